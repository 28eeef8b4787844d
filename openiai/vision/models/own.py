"""An operator's own ONNX recognizer as a FaceModelVersion ("Your own recognizer" in the README).

A file ``models/<version>.toml`` (or ``.json``) in the data directory adds the version
``<version>``: it names an ONNX recognizer the operator owns, its sha256, how the network wants
its input (crop size, channel order, layout, mean/std), the 5-point alignment template, the
embedding size, and the score table that ``openiai calibrate --model-version <version>
--folders DIR`` writes. :func:`install` reads every such file at start-up (through
:meth:`openiai.services.faces.FacePipeline.from_settings`), registers the versions with
:mod:`openiai.core.versions` and returns one zoo class per recognizer; from then on the version
is served like 3.0 (CreateGroup, enrolment, searches, SearchPersons, VerifyFace/Person,
CompareFace), with 3.0's score anchors (40/50/60 = FAR 1e-3/1e-4/1e-5) on its own table.

Version names: ``N.M`` (1-3 digits each, e.g. ``9.0``, ``10.1``), not a built-in one (2.0, 3.0).
Every mistake in a file (unknown or missing field, bad value, missing ONNX file, another digest,
an input shape the graph contradicts, a missing or stale score table) is one
:class:`OwnModelError` line naming the file, which the server prints instead of starting.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...core import versions
from ...core.features import normalize
from ...core.settings import SettingsError
from .. import align as _align
from .files import ModelFile, sha256_of

FOLDER = "models"  # under the data directory
NAME_RULE = re.compile(r"^[0-9]{1,3}\.[0-9]{1,3}$")
TEMPLATES = {
    # The ArcFace/SFace template (YuNet's landmark order), 112 x 112; scaled to other sizes.
    "arcface112": ((112, 112), _align.TEMPLATE, _align.TEMPLATE_MEAN),
}
TOP_FIELDS = {"file", "sha256", "embedding_size", "calibration", "output", "description",
              "input", "alignment"}
INPUT_FIELDS = {"size", "channels", "layout", "mean", "std", "scale"}
ALIGNMENT_FIELDS = {"template", "points"}


class OwnModelError(SettingsError):
    """A model config in the data directory cannot be used; the message names the file."""


@dataclass(frozen=True)
class OwnModel:
    """One parsed, checked config: everything its recognizer and its version need."""

    version: str
    config: Path
    file: Path
    sha256: str
    dim: int
    table: Path
    width: int
    height: int
    rgb: bool
    nchw: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    template: np.ndarray  # (5, 2) float32, crop pixels
    template_mean: np.ndarray  # (2,) float32
    output: str | None
    description: str

    @property
    def recognizer(self) -> str:
        return f"own-{self.version}"


def folder(data_dir: Path) -> Path:
    return Path(data_dir) / FOLDER


def config_files(data_dir: Path) -> list[Path]:
    where = folder(data_dir)
    if not where.is_dir():
        return []
    return sorted(p for p in where.iterdir() if p.suffix in (".toml", ".json") and p.is_file()
                  and not p.name.endswith(".calibration.json"))


def check_name(name: str) -> str:
    """The version string a config may define (its file name without the suffix)."""
    if not NAME_RULE.match(name):
        raise ValueError(f"the version {name!r} (the file's name) must be N.M, e.g. 9.0 or 10.1")
    if name in versions.BUILTIN:
        raise ValueError(f"{name} is a built-in FaceModelVersion; name the file another N.M")
    return name


def _numbers(value, n: int, what: str) -> tuple[float, ...]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value] * n
    if (not isinstance(value, list) or len(value) != n
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"{what} must be a number or a list of {n} numbers, got {value!r}")
    return tuple(float(v) for v in value)


def _choice(table: dict, key: str, options: tuple[str, ...], default: str, where: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or value.upper() not in options:
        raise ValueError(f"{where}{key} must be one of {', '.join(options)}, got {value!r}")
    return value.upper()


def _unknown(table: dict, allowed: set[str], where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise ValueError(f"unknown field {where}{extra[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _read(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the file must hold a table of fields")
    return data


def parse(path: Path) -> OwnModel:
    """One config file, checked field by field (no model file is opened here)."""
    version = check_name(path.stem)
    data = _read(path)
    _unknown(data, TOP_FIELDS, "")
    for key in ("file", "sha256", "embedding_size"):
        if key not in data:
            raise ValueError(f"missing field {key!r}")
    if not isinstance(data["file"], str) or not data["file"]:
        raise ValueError("file must name the ONNX file (beside the config, or an absolute path)")
    digest = data["sha256"]
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
        raise ValueError("sha256 must be the file's 64 hex digit digest (sha256sum FILE)")
    dim = data["embedding_size"]
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= 4096:
        raise ValueError(f"embedding_size must be a whole number 1..4096, got {dim!r}")
    table = data.get("calibration", f"{version}.calibration.json")
    output = data.get("output")
    if not isinstance(table, str) or not table:
        raise ValueError("calibration must name the score table's file")
    if output is not None and not isinstance(output, str):
        raise ValueError("output must be the name of a graph output")

    inp = data.get("input", {})
    if not isinstance(inp, dict):
        raise ValueError("[input] must be a table")
    _unknown(inp, INPUT_FIELDS, "input.")
    size = inp.get("size", [112, 112])
    if isinstance(size, int) and not isinstance(size, bool):
        size = [size, size]
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 16 <= v <= 1024 for v in size)):
        raise ValueError(f"input.size must be [width, height] (16..1024 pixels each), got {size!r}")
    width, height = size
    channels = _choice(inp, "channels", ("RGB", "BGR"), "RGB", "input.")
    layout = _choice(inp, "layout", ("NCHW", "NHWC"), "NCHW", "input.")
    mean = _numbers(inp.get("mean", 0.0), 3, "input.mean")
    if "std" in inp and "scale" in inp:
        raise ValueError("give input.std or input.scale (1 / std), not both")
    if "scale" in inp:
        scale = _numbers(inp["scale"], 3, "input.scale")
        if any(s == 0 for s in scale):
            raise ValueError("input.scale must not be 0")
        std = tuple(1.0 / s for s in scale)
    else:
        std = _numbers(inp.get("std", 1.0), 3, "input.std")
    if any(s == 0 for s in std):
        raise ValueError("input.std must not be 0")

    al = data.get("alignment", {"template": "arcface112"})
    if not isinstance(al, dict):
        raise ValueError("[alignment] must be a table")
    _unknown(al, ALIGNMENT_FIELDS, "alignment.")
    if ("template" in al) == ("points" in al):
        raise ValueError("[alignment] needs template = \"arcface112\" or points = five [x, y] pairs")
    if "template" in al:
        if al["template"] not in TEMPLATES:
            raise ValueError(f"alignment.template must be one of {', '.join(TEMPLATES)} (or give "
                             f"points), got {al['template']!r}")
        (tw, th), pts, pts_mean = TEMPLATES[al["template"]]
        factor = np.array([width / tw, height / th], np.float32)
        template, template_mean = pts * factor, pts_mean * factor
    else:
        pts = al["points"]
        if (not isinstance(pts, list) or len(pts) != 5
                or not all(isinstance(p, list) and len(p) == 2 for p in pts)):
            raise ValueError("alignment.points must be five [x, y] pairs in crop pixels (eye on "
                             "the image's left, other eye, nose tip, mouth corner on the left, other)")
        template = np.array([_numbers(p, 2, "alignment.points") for p in pts], np.float32)
        template_mean = template.mean(axis=0)
    description = data.get("description", "")
    file = Path(data["file"]).expanduser()
    return OwnModel(
        version=version, config=path, file=file if file.is_absolute() else path.parent / file,
        sha256=digest.lower(), dim=dim, table=path.parent / table, width=width, height=height,
        rgb=channels == "RGB", nchw=layout == "NCHW", mean=mean, std=std,
        template=template.astype(np.float32), template_mean=np.asarray(template_mean, np.float32),
        output=output, description=str(description))


def check_file(model: OwnModel) -> None:
    """The ONNX file is there, is the one the config's digest names, and its graph agrees with
    the config's input shape and embedding size (where the graph declares them)."""
    import onnx

    if not model.file.is_file():
        raise ValueError(f"the ONNX file {model.file} does not exist")
    actual = sha256_of(model.file)
    if actual != model.sha256:
        raise ValueError(f"{model.file} has sha256 {actual}, the config says {model.sha256}; "
                         "refusing it (a new file needs a new digest and a new calibration)")
    try:
        graph = onnx.load(str(model.file), load_external_data=False).graph
    except Exception as exc:
        raise ValueError(f"{model.file} is not an ONNX model: {str(exc).splitlines()[0][:200]}") from None
    inits = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if not inputs:
        raise ValueError(f"{model.file} has no input")
    want = [3, model.height, model.width] if model.nchw else [model.height, model.width, 3]
    dims = [d.dim_value or None for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise ValueError(f"{model.file}'s input {inputs[0].name!r} has {len(dims)} dims; a "
                         "recognizer takes a 4-d image batch")
    for have, need in zip(dims[1:], want):
        if have is not None and have != need:
            layout = "NCHW" if model.nchw else "NHWC"
            raise ValueError(f"{model.file}'s input is {dims} but input.size/layout say "
                             f"{layout} {['n', *want]}")
    outputs = {o.name: o for o in graph.output}
    if model.output is not None and model.output not in outputs:
        raise ValueError(f"output {model.output!r} is not a graph output (it has "
                         f"{', '.join(outputs)})")
    out = outputs[model.output] if model.output else graph.output[0]
    odims = [d.dim_value or None for d in out.type.tensor_type.shape.dim][1:]
    if odims and all(odims):
        size = int(np.prod(odims))
        if size != model.dim:
            raise ValueError(f"{model.file}'s output {out.name!r} has {size} values per face "
                             f"but embedding_size says {model.dim}")


def check_table(model: OwnModel) -> None:
    """The score table is there, usable, and measured on this very file."""
    from .. import scores

    if not model.table.is_file():
        raise ValueError(f"no score table {model.table} yet: run `openiai calibrate "
                         f"--model-version {model.version} --folders DIR` (a folder per person)")
    try:  # read through the scores' cache: the first score needs no second read
        table = scores.calibration(model.recognizer, "compare")  # the key scores.anchors uses
        scores.anchors(model.version, table)
    except Exception as exc:
        raise ValueError(f"score table {model.table} is not usable ({exc}); run `openiai "
                         f"calibrate --model-version {model.version} --folders DIR` again") from None
    if table.get("recognizer_sha256") not in (None, model.sha256):
        raise ValueError(f"score table {model.table} was measured on another file (sha256 "
                         f"{table['recognizer_sha256']}); calibrate {model.version} again")


class OnnxRecognizer:
    """An operator's recognizer in the zoo: ``align`` to the configured template and crop size,
    ``embed`` through onnxruntime with the configured pre-processing, unit vectors out."""

    NAME = "own"
    FILE: ModelFile
    MODEL: OwnModel

    def __init__(self, path, threads: int = 1):
        import onnx

        from ..onnx_graph import create_session

        m = self.MODEL
        self.path = path
        self.DIM = m.dim
        self.CROP_SIZE = (m.width, m.height)
        self.session = create_session(onnx.load(str(path)), {0: "batch"}, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = m.output or self.session.get_outputs()[0].name
        self._mean = np.array(m.mean, np.float32)
        self._std = np.array(m.std, np.float32)
        self.batched = True  # until a graph with a fixed batch of 1 says otherwise

    def align(self, pixels: np.ndarray, face) -> np.ndarray:
        """The face warped onto the template: (height, width, 3) uint8 BGR."""
        m = self.MODEL
        return _align.align(pixels, face, m.template, m.template_mean, (m.width, m.height))

    def _blob(self, crops: list[np.ndarray]) -> np.ndarray:
        m = self.MODEL
        batch = np.stack([np.asarray(c, np.uint8) for c in crops])
        if batch.shape[1:] != (m.height, m.width, 3):
            raise ValueError(f"{self.NAME} needs ({m.height}, {m.width}, 3) crops, got {batch.shape[1:]}.")
        x = batch[:, :, :, ::-1] if m.rgb else batch
        x = (x.astype(np.float32) - self._mean) / self._std
        if m.nchw:
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=np.float32)

    def _run(self, blob: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run([self.output_name], {self.input_name: blob})[0])

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """(n, embedding_size) unit embeddings of aligned crops."""
        if len(crops) == 0:
            return np.zeros((0, self.DIM), np.float32)
        blob = self._blob(crops)
        feats = None
        if self.batched or len(crops) == 1:
            try:
                feats = self._run(blob)
            except Exception:
                if len(crops) == 1:
                    raise
                self.batched = False  # a graph fixed to batch 1: one crop per run from now on
        if feats is None:
            feats = np.concatenate([self._run(blob[i:i + 1]) for i in range(len(crops))])
        feats = feats.reshape(len(crops), -1).astype(np.float32)
        if feats.shape[1] != self.DIM:
            raise ValueError(f"{self.NAME}: the network gives {feats.shape[1]} values per face, "
                             f"its config's embedding_size says {self.DIM}")
        return normalize(feats)

    def warmup(self) -> None:
        m = self.MODEL
        self.embed([np.zeros((m.height, m.width, 3), np.uint8)] * 2)


def recognizer_class(model: OwnModel) -> type:
    """The zoo class of one config: :class:`OnnxRecognizer` bound to its file and digest."""
    file = ModelFile(names=(model.file.name,), bundled=lambda: model.file.parent,
                     source=f"operator's own recognizer for FaceModelVersion {model.version} "
                            f"({model.config})" + (f": {model.description}" if model.description else ""),
                     sha256={model.file.name: model.sha256})
    return type(f"OnnxRecognizer_{model.version.replace('.', '_')}", (OnnxRecognizer,),
                {"NAME": model.recognizer, "FILE": file, "MODEL": model})


def load(data_dir: Path) -> list[OwnModel]:
    """Every config in ``<data_dir>/models``, parsed and its ONNX file checked; the first
    problem is an :class:`OwnModelError` naming the file."""
    out = []
    for path in config_files(data_dir):
        try:
            model = parse(path)
            check_file(model)
        except (ValueError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise OwnModelError(f"model config {path}: {exc}") from None
        except OSError as exc:
            raise OwnModelError(f"model config {path}: {exc.strerror or exc} "
                                f"({exc.filename or path})") from None
        out.append(model)
    return out


def version_of(model: OwnModel) -> versions.ModelVersion:
    return versions.ModelVersion(
        name=model.version, recognizer=model.recognizer, dim=model.dim,
        anchor_scores=versions.OWN_ANCHOR_SCORES,
        search_faces_limit=versions.OWN_SEARCH_FACES_LIMIT, person_search=True,
        table=str(model.table))


def install(data_dir: Path, require_tables: bool = True) -> dict[str, type]:
    """Load the data directory's configs, make their versions the process's own versions
    (replacing any from before) and return their zoo classes by name. ``require_tables=False``
    (``openiai calibrate``, which writes the tables) accepts a version without its table yet."""
    from .. import scores

    try:
        models = load(data_dir)
        versions.install_own([version_of(m) for m in models])
        scores.forget_tables()
        for model in models if require_tables else ():
            try:
                check_table(model)
            except ValueError as exc:
                raise OwnModelError(f"model config {model.config}: {exc}") from None
    except OwnModelError:  # none rather than some: a process that goes on serves built-ins only
        versions.install_own([])
        scores.forget_tables()
        raise
    return {m.recognizer: recognizer_class(m) for m in models}
