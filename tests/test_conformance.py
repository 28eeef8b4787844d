"""One scenario (tests/conformance/scenario.json), three official clients, one answer.

The scenario is run, step by step, through
- the Python SDK (tencentcloud-sdk-python-iai) with TC3-HMAC-SHA256 over POST and GET,
  HmacSHA256 over GET and HmacSHA1 over POST, on API versions 2020-03-03 and 2018-03-01;
- tccli (`--version` 2020-03-03 and 2018-03-01), one process per call, set up with
  `tccli configure set` in a throw-away HOME (its endpoint `http://127.0.0.1:PORT`);
- the Node SDK (tencentcloud-sdk-nodejs) through tests/conformance/driver.js with TC3 over POST
  and GET, HmacSHA256 over POST and HmacSHA1 over GET, installed by this module with npm into
  .cache/node/ (git-ignored; no node/npm or a failed install fails the Node tests).

Every run uses a fresh account and yields a transcript: per step, the error code, or the output
fields the step names (with captured FaceIds replaced by their variable names) and the set of
non-null keys the client parsed. Each transcript must meet the scenario's expectations, all
transcripts must be equal to each other on the steps they share, and the server's log must show
every request of a run with the run's signature style and HTTP method.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from conftest import TESTDATA
from harness import REPO, Api

HERE = Path(__file__).resolve().parent / "conformance"
SCENARIO = json.loads((HERE / "scenario.json").read_text(encoding="utf-8"))
VERSIONS = ("2020-03-03", "2018-03-01")

NODE_SDK_VERSION = "4.1.313"
NODE_CACHE = REPO / ".cache" / "node"
TCCLI = Path(sys.executable).with_name("tccli")

# (client, version, signature, HTTP method); tccli always signs TC3 and POSTs.
RUNS = [
    *[("python", v, sign, method) for v in VERSIONS
      for sign, method in [("TC3-HMAC-SHA256", "POST"), ("TC3-HMAC-SHA256", "GET"),
                           ("HmacSHA256", "GET"), ("HmacSHA1", "POST")]],
    *[("tccli", v, "TC3-HMAC-SHA256", "POST") for v in VERSIONS],
    ("node", "2020-03-03", "TC3-HMAC-SHA256", "POST"),
    ("node", "2018-03-01", "TC3-HMAC-SHA256", "GET"),
    ("node", "2020-03-03", "HmacSHA256", "POST"),
    ("node", "2018-03-01", "HmacSHA1", "GET"),
]
RUN_IDS = ["-".join(r) for r in RUNS]
REFERENCE = RUN_IDS[0]

MISSING = "<missing>"


# --- the scenario --------------------------------------------------------------------------

_images: dict[str, str] = {}


def image(name: str) -> str:
    if name not in _images:
        _images[name] = base64.b64encode((TESTDATA / SCENARIO["images"][name]).read_bytes()) \
            .decode("ascii")
    return _images[name]


def substitute(value, variables: dict):
    """'@image' -> base64 of the image; '$var' -> the captured value."""
    if isinstance(value, str):
        if value.startswith("@"):
            return image(value[1:])
        if value.startswith("$"):
            return variables.get(value[1:], f"<unset {value}>")
        return value
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    return value


def resolve(value, path: str):
    """'A.0.B', 'A.*.B' (maps over a list), 'A.#' (length of a list)."""
    def walk(node, parts):
        if not parts:
            return node
        head, rest = parts[0], parts[1:]
        if head == "#":
            return len(node) if isinstance(node, list) else MISSING
        if head == "*":
            return [walk(n, rest) for n in node] if isinstance(node, list) else MISSING
        if isinstance(node, list) and head.isdigit():
            i = int(head)
            return walk(node[i], rest) if i < len(node) else MISSING
        if isinstance(node, dict):
            return walk(node[head], rest) if head in node and node[head] is not None else MISSING
        return MISSING
    return walk(value, path.split("."))


def abstract(value, names: dict[str, str]):
    """Captured values (random FaceIds) replaced by '$name', so runs can be compared."""
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, list):
        return [abstract(v, names) for v in value]
    if isinstance(value, dict):
        return {k: abstract(v, names) for k, v in value.items()}
    return value


def shape(value, prefix: str = "") -> list[str]:
    """Every non-null key path the client parsed ('A[].B'): which fields each client saw."""
    out = []
    if isinstance(value, dict):
        for k, v in value.items():
            if v is None:
                continue
            out.append(prefix + k)
            out.extend(shape(v, prefix + k + "."))
    elif isinstance(value, list):
        for v in value:
            out.extend(shape(v, prefix[:-1] + "[]." if prefix else "[]."))
    return sorted(set(out))


def canon(value):
    """Numbers as floats, booleans tagged: 100 == 100.0 (Node re-serialises 100.0 as 100), but
    true != 1."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return [canon(v) for v in value]
    if isinstance(value, dict):
        return {k: canon(v) for k, v in value.items()}
    return value


def matches(actual, matcher) -> bool:
    if isinstance(matcher, dict) and len(matcher) == 1:
        (kind, arg), = matcher.items()
        if kind == "range":
            return isinstance(actual, (int, float)) and not isinstance(actual, bool) \
                and arg[0] <= actual <= arg[1]
        if kind == "oneOf":
            return actual in arg
        if kind == "regex":
            return isinstance(actual, str) and re.search(arg, actual) is not None
        if kind == "recentMs":
            return actual is True
    return canon(actual) == canon(matcher)


def recent_ms(value) -> bool:
    return isinstance(value, int) and abs(value - time.time() * 1000) < 86_400_000


def run_scenario(call, version: str) -> tuple[dict, list[str], list[str]]:
    """Run every step for ``version`` through ``call(action, params, auth)``, which returns
    ("ok", response dict, RequestId) or ("error", code, RequestId).
    Returns (transcript, problems, RequestIds)."""
    variables: dict[str, str] = {}
    transcript: dict[str, dict] = {}
    problems: list[str] = []
    request_ids: list[str] = []
    for step in SCENARIO["steps"]:
        if version not in step.get("versions", VERSIONS):
            continue
        sid = step["id"]
        params = substitute(step.get("params", {}), variables)
        status, body, request_id = call(step["action"], params, step.get("auth"))
        request_ids.append(request_id)
        if status == "error":
            transcript[sid] = {"error": body}
            if body != step.get("expect_error"):
                want = step.get("expect_error") or "success"
                problems.append(f"{sid} ({step['action']}): expected {want}, got error {body}")
            continue
        for var, path in step.get("capture", {}).items():
            got = resolve(body, path)
            if isinstance(got, str) and got:
                variables[var] = got
            else:
                problems.append(f"{sid}: nothing to capture at {path} for ${var}: {got!r}")
        names = {v: f"${k}" for k, v in variables.items()}
        out = abstract(body, names)
        expect = step.get("expect", {})
        fields = {p: resolve(out, p) for p in [*expect, *step.get("record", [])]}
        for path, matcher in expect.items():  # timestamps differ between runs
            if matcher == {"recentMs": True} and recent_ms(fields[path]):
                fields[path] = True
        transcript[sid] = {"out": fields, "keys": shape(body)}
        if "expect_error" in step:
            problems.append(f"{sid} ({step['action']}): expected {step['expect_error']}, "
                            f"got success {json.dumps(fields, ensure_ascii=False)[:300]}")
            continue
        for path, matcher in expect.items():
            if not matches(fields[path], matcher):
                problems.append(f"{sid} ({step['action']}): {path} = "
                                f"{json.dumps(fields[path], ensure_ascii=False)[:300]}, expected "
                                f"{json.dumps(matcher, ensure_ascii=False)}")
    return transcript, problems, request_ids


# --- clients ---------------------------------------------------------------------------------

def credentials(auth: str | None, secret_id: str, secret_key: str) -> tuple[str, str]:
    if auth == "unknown-id":
        return "AKID" + uuid.uuid4().hex, uuid.uuid4().hex
    if auth == "wrong-key":
        return secret_id, secret_key[::-1] + "x"
    assert auth is None, auth
    return secret_id, secret_key


def python_caller(server, secret_id, secret_key, version, sign, method):
    def call(action, params, auth):
        sid, skey = credentials(auth, secret_id, secret_key)
        api = Api(server, sid, skey, version=version, sign=sign, method=method)
        try:
            out = api.call(action, **params)
        except TencentCloudSDKException as exc:
            return "error", exc.code, exc.requestId
        return "ok", out, out.pop("RequestId", None)
    return call


def tccli_arg(value) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def tccli_caller(server, secret_id, secret_key, version, home: Path):
    if not TCCLI.exists():
        pytest.fail(f"tccli not installed at {TCCLI}: pip install -e '.[test]'")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TENCENTCLOUD_", "TCCLI_"))}
    env.update(HOME=str(home), PYTHONIOENCODING="utf-8", LC_ALL="C.UTF-8")

    def tccli(*args, check=True):
        out = subprocess.run([str(TCCLI), *args], env=env, capture_output=True, text=True,
                             encoding="utf-8", timeout=120)
        if check and out.returncode != 0:
            pytest.fail(f"tccli {' '.join(args[:3])} failed ({out.returncode}): "
                        f"{out.stdout[-2000:]}{out.stderr[-2000:]}")
        return out

    # `tccli configure` writes ~/.tccli/default.{credential,configure} under the temp HOME.
    tccli("configure", "set", "secretId", secret_id, "secretKey", secret_key,
          "region", "ap-guangzhou", "output", "json")
    tccli("configure", "set", "iai.endpoint", f"http://{server.endpoint}")

    def call(action, params, auth):
        args = ["iai", action, "--version", version]
        if auth:
            sid, skey = credentials(auth, secret_id, secret_key)
            args += ["--secretId", sid, "--secretKey", skey]
        for k, v in params.items():
            args += [f"--{k}", tccli_arg(v)]
        out = tccli(*args, check=False)
        if out.returncode == 0:
            body = json.loads(out.stdout)
            return "ok", body, body.pop("RequestId", None)
        # API errors: "[TencentCloudSDKException] code:<Code> message:<...> requestId:<id>" on
        # stderr, exit status 255.
        m = re.search(r"\[TencentCloudSDKException\] code:(\S+) .*requestId:(\S*)",
                      out.stderr, re.S)
        if out.returncode == 255 and m:
            return "error", m.group(1), m.group(2)
        return "error", f"TccliFailed({out.returncode}): {out.stderr.strip()[-500:]}", None
    return call


class NodeDriver:
    """tests/conformance/driver.js in a child process, one JSON line per call."""

    def __init__(self, modules: Path, server, sign: str, method: str):
        self.proc = subprocess.Popen(
            [shutil.which("node"), str(HERE / "driver.js"), str(modules), server.endpoint, sign,
             method], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8")

    def call(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"node driver exited ({self.proc.poll()})")
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def node_caller(driver: NodeDriver, secret_id, secret_key, version):
    def call(action, params, auth):
        sid, skey = credentials(auth, secret_id, secret_key)
        res = driver.call({"version": version, "action": action, "params": params,
                           "secretId": sid, "secretKey": skey})
        if "error" in res:
            return "error", res["error"]["code"], res["error"].get("requestId")
        return "ok", res["ok"], res["ok"].pop("RequestId", None)
    return call


# --- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def node_sdk() -> Path:
    """node_modules with tencentcloud-sdk-nodejs@NODE_SDK_VERSION, installed once into
    .cache/node/ (git-ignored). No node/npm, or a failed install, fails the tests."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("node and npm are needed for the Node SDK conformance run (Node 20)")
    modules = NODE_CACHE / "node_modules"
    pkg = modules / "tencentcloud-sdk-nodejs" / "package.json"
    if not pkg.exists() or json.loads(pkg.read_text())["version"] != NODE_SDK_VERSION:
        NODE_CACHE.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(
            [npm, "install", "--prefix", str(NODE_CACHE), "--no-audit", "--no-fund",
             "--loglevel=error", f"tencentcloud-sdk-nodejs@{NODE_SDK_VERSION}"],
            capture_output=True, text=True, timeout=600)
        if out.returncode != 0 or not pkg.exists():
            pytest.fail(f"npm install tencentcloud-sdk-nodejs@{NODE_SDK_VERSION} failed "
                        f"({out.returncode}): {out.stdout[-2000:]}{out.stderr[-2000:]}")
    return modules


_transcripts: dict[tuple[int, str], tuple[dict, list[str], list[str]]] = {}


def runs_for(server) -> list[str]:
    """tccli runs only against the SQLite server: each call is a new tccli process that spends
    ~0.3 s of CPU building its command table for every Tencent Cloud service, and the storage
    backend does not change what a client sees on the wire (the Python and Node runs cover
    both backends)."""
    sqlite = server.database_url is None
    return [r for r in RUN_IDS if sqlite or not r.startswith("tccli-")]


@pytest.fixture(scope="module")
def transcripts(server, tmp_path_factory):
    """get(run id, node_modules) -> (transcript, problems, RequestIds), computed once per
    server. node_modules (the node_sdk fixture) is needed for the Node runs only, so a failed
    npm install fails those and leaves the Python and tccli runs standing."""

    def new_key() -> tuple[str, str]:
        return server.create_key(f"conf-{uuid.uuid4().hex[:10]}")

    def compute(run_id: str, key: tuple[str, str], home: Path | None = None,
                node_modules: Path | None = None):
        client, version, sign, method = RUNS[RUN_IDS.index(run_id)]
        secret_id, secret_key = key
        if client == "python":
            call = python_caller(server, secret_id, secret_key, version, sign, method)
            return run_scenario(call, version)
        if client == "tccli":
            return run_scenario(tccli_caller(server, secret_id, secret_key, version, home),
                                version)
        driver = NodeDriver(node_modules, server, sign, method)
        try:
            return run_scenario(node_caller(driver, secret_id, secret_key, version), version)
        finally:
            driver.close()

    def get(run_id: str, node_modules: Path | None = None):
        key = (id(server), run_id)
        if key in _transcripts:
            return _transcripts[key]
        if run_id.startswith("tccli-"):
            # The tccli runs (one process per call) go two at a time, each on its own account.
            todo = [r for r in runs_for(server)
                    if r.startswith("tccli-") and (id(server), r) not in _transcripts]
            keys = [new_key() for _ in todo]
            homes = [tmp_path_factory.mktemp("tccli-home") for _ in todo]
            with ThreadPoolExecutor(max_workers=2) as pool:
                for r, result in zip(todo, pool.map(compute, todo, keys, homes)):
                    _transcripts[(id(server), r)] = result
        else:
            _transcripts[key] = compute(run_id, new_key(), node_modules=node_modules)
        return _transcripts[key]

    return get


# --- tests -----------------------------------------------------------------------------------

@pytest.mark.parametrize("run_id", RUN_IDS)
def test_client_meets_expectations(request, server, transcripts, run_id):
    if run_id not in runs_for(server):
        pytest.skip("tccli runs against the SQLite server only (see runs_for)")
    client, version, sign, method = RUNS[RUN_IDS.index(run_id)]
    modules = request.getfixturevalue("node_sdk") if client == "node" else None
    transcript, problems, request_ids = transcripts(run_id, modules)
    expected_steps = [s["id"] for s in SCENARIO["steps"] if version in s.get("versions", VERSIONS)]
    assert list(transcript) == expected_steps
    assert not problems, f"{run_id}: {len(problems)} step(s) off:\n" + "\n".join(problems)
    # The server's log line for each call (found by its RequestId): the client really sent
    # every request with the signature style and HTTP method this run is about.
    logged = {}
    for line in server.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{") and '"request_id"' in line:
            entry = json.loads(line)
            logged[entry["request_id"]] = (entry.get("sign"), entry.get("http_method"))
    styles = {logged.get(rid, ("not in the server log", rid)) for rid in request_ids}
    assert styles == {(sign, method)}, styles


def test_clients_agree(server, transcripts, node_sdk):
    """Every client, signature style, method and version: the same normalised transcript."""
    reference = transcripts(REFERENCE)[0]
    differences = []
    for run_id in runs_for(server)[1:]:
        other = transcripts(run_id, node_sdk)[0]
        for sid in [sid for sid in reference if sid in other]:
            if canon(reference[sid]) != canon(other[sid]):
                ref, got = (json.dumps(t[sid], ensure_ascii=False)[:600]
                            for t in (reference, other))
                differences.append(f"{sid}:\n    {REFERENCE} {ref}\n    {run_id} {got}")
    assert not differences, f"{len(differences)} difference(s):\n" + "\n".join(differences)
