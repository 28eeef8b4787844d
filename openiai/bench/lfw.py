"""Real SFace embeddings of the LFW images, computed once through the production engine and cached.

``bench/out/lfw_embeddings.npy`` holds the (n, 128) float32 unit vectors and
``bench/out/lfw_labels.npy`` the identity index (int32) of each row; images where no face is
found (even at a lowered detector threshold) are skipped.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from openiai.core.settings import Settings

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "bench" / "out"


def lfw_images_dir() -> Path:
    return (Settings.from_env().testdata_dir / "lfw" / "images").resolve()


def _embed_one(engine, path: Path) -> np.ndarray | None:
    from openiai.vision.image import decode_bytes

    pixels = decode_bytes(path.read_bytes()).pixels
    faces = engine.detect(pixels, min_face_size=34, max_faces=1)
    if not faces:
        faces = engine.detect(pixels, min_face_size=34, max_faces=1, score_threshold=0.3)
    if not faces:
        return None
    # The detector returns faces largest first; keep the largest one.
    face = max(faces, key=lambda f: float(f.box[2] * f.box[3]))
    return engine.feature(pixels, face, "3.0").astype(np.float32)


def load_embeddings(limit: int | None = None, workers: int = 2, out_dir: Path = OUT_DIR,
                    console=None) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings (n,128) float32 unit, labels (n,) int32); cached in `out_dir`.

    `limit` caps the number of images embedded when there is no cache (a faster first run); a
    cache holding fewer images than asked for is recomputed.
    """
    emb_path, lab_path = out_dir / "lfw_embeddings.npy", out_dir / "lfw_labels.npy"
    paths = sorted(lfw_images_dir().glob("*/*.jpg"))
    if not paths:
        raise FileNotFoundError(f"no LFW images under {lfw_images_dir()}")
    if limit:
        # Whole identities first so that a limited run still has people with several images.
        paths = paths[:limit]
    if emb_path.is_file() and lab_path.is_file():
        emb, lab = np.load(emb_path), np.load(lab_path)
        meta = out_dir / "lfw_embeddings.count"
        done = int(meta.read_text()) if meta.is_file() else len(emb)
        if done >= len(paths):
            return emb, lab
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from openiai.bench.evaluate import face_pipeline

    engine = face_pipeline()
    engine.warmup(("yunet", "sface"))
    names = sorted({p.parent.name for p in paths})
    name_ix = {n: i for i, n in enumerate(names)}
    vecs, labels = [], []
    t0 = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console) as bar, ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        task = bar.add_task("embedding LFW", total=len(paths))
        for p, v in zip(paths, pool.map(lambda p: _embed_one(engine, p), paths)):
            if v is not None:
                vecs.append(v)
                labels.append(name_ix[p.parent.name])
            bar.advance(task)
    emb = np.stack(vecs).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    lab = np.asarray(labels, np.int32)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.save(emb_path, emb)
    np.save(lab_path, lab)
    (out_dir / "lfw_embeddings.count").write_text(str(len(paths)))
    if console is not None:
        console.print(f"embedded {len(paths)} images ({len(emb)} faces) in {time.perf_counter() - t0:.0f} s")
    return emb, lab
