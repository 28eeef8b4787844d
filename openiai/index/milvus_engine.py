"""Milvus as the vector engine: a :class:`~openiai.index.engine.VectorIndex` behind a Milvus
server (``milvus://host:19530``) or an embedded Milvus Lite file (``milvus-lite:path.db``),
through pymilvus (the optional extra ``openiai[milvus]``).

Layout, per (account, model version) and under a name prefix (``?prefix=``, default
``openiai``; one per database sharing a Milvus):

* ``<prefix>_a<account>_v<hex(version)>_faces``: one row per face - ``pk`` (face pk),
  ``person`` (person pk), ``groups`` (the person's group pks, an INT64 array) and ``vec``;
* ``<prefix>_a<account>_v<hex(version)>_persons``: one row per person - ``pk`` (person pk),
  ``has_vec``, ``groups`` and ``vec`` (its fused vector; zeros while it has none, never
  returned: searches filter on ``has_vec``);
* ``<prefix>_meta``: one row, ``last_seq``: the change-log position the content stands at.

Why a collection pair per (account, version) rather than partitions of one collection: a
collection's vectors have one width and one index, an account's data is dropped whole with
``drop_collection`` (``collection_drop``), searches of one account never touch another's
segments, and Milvus allows 65,536 collections against 1,024 partitions per collection (a
partition key would lift that, but its filter is only as strong as our own group filter).
A deployment with more than ~30,000 accounts with faces would move to a partition key on
the account.

The group filter is the ``groups`` array on every row: a face is in a group when its person
is, so a membership change rewrites that person's face rows (a person has at most a handful).
Memberships are capped at 4,096 groups per person (Milvus's array capacity; IAI allows 100).
Two ways to apply it (``?filter=``):

* ``milvus`` (the default on a server): ``array_contains_any`` in the search expression;
* ``fetch`` (the default on Milvus Lite, which evaluates array expressions row by row and
  cannot index an array field: 0.5-1.3 s per search or count at 20,000 rows): an unfiltered
  search for more rows than wanted (8x, then 64x, up to 4,096), kept when their ``groups``
  meet the searched ones. With an exact index that is exact: the best k rows of the groups are
  the first k of them in the unfiltered order. Groups too small a share for that fall back to
  the ``milvus`` filter.

Group counts (FaceNum / PersonNum of every search) are cached per change-log position: the
same groups at the same ``last_seq`` are counted once. Rows written since the last flush are
flushed after a rebuild and every 5,000 rows: Milvus Lite searches growing (unsealed)
segments about 20x slower than sealed ones (720 against 30 ms at 20,000 rows).

Index (``?index=``, default ``FLAT``, exact, on a server and on Milvus Lite). Measured on a
Milvus 2.3.5 server (``openiai bench search``, LFW probes among Gaussian distractors, README
Deployment): AUTOINDEX (HNSW M=18, efConstruction=240 there) searched with Milvus's own ef
gave recall@1 0.42 at 100,000 rows (0.25 in a 10% group), about what an explicit HNSW gives
with ef = the rows asked for (0.43 / 0.24 at 20,000). HNSW (M=16, efConstruction=200) at
100,000 rows: ef 2,048 gives 1.0 / 0.97 in 13 / 18 ms, ef 4,096 1.0 / 0.98 in 20 / 22 ms
(``Bounded`` searches), and it builds in 156 s against FLAT's 24 s, while FLAT is exact in
28 / 32 ms and under ``Strong`` searches (the default) every search waits ~200 ms for the
server's time tick anyway. So FLAT is the default, its cost linear in the collection (about
0.3 ms per 1,000 rows on 2 shared cores: past a few million faces per account and version,
choose HNSW). ``?index=HNSW`` (``m``, ``ef_construction``, ``ef``: default ef 2,048, never
below the rows asked for) or ``IVF_FLAT`` (``nlist``, ``nprobe``; not measured) for that.
Rows in growing (unflushed) or not-yet-indexed segments are searched through the server's
interim index (IVF, nlist 128, nprobe 16 on 2.3) whatever is asked for.

Consistency: collections are created with ``Strong`` consistency (a search sees every write
acknowledged before it) and searched ``Strong`` by default: each waits for the server's next
time tick (``proxy.timeTickInterval``, 200 ms). ``?consistency=Session`` (this process's own
writes seen), ``Bounded`` or ``Eventually`` drop that wait (FLAT at 100,000 rows: p50 29-35
against 200 ms) at the price of a search not yet seeing another process's write of the last
moments (hits are re-checked against the database either way). ``last_seq`` is written after
the changes it covers, and every write verb is idempotent (upserts by pk, deletes by pk), so a
crash between the two only replays. The database stays the truth: IndexSync feeds this engine
from the change log, rebuilds it when its seq does not fit the log (``openiai index rebuild``
forces that), and the services re-check every hit against the database before answering.
"""

from __future__ import annotations

import threading
from typing import Any, Iterable
from urllib.parse import parse_qs, urlsplit

import numpy as np

from ..core import versions
from ..core.changes import Change
from ..core.features import as_vector, normalize
from .engine import Hit, by_group
from .replay import apply_change

MAX_FACES_PER_PERSON = 5  # as IndexManager: faces fetched per person wanted (unique_persons)
MAX_GROUPS = 4096  # Milvus's largest array capacity
BATCH = 2000  # rows per insert / upsert call
QUERY_LIMIT = 16_384  # Milvus's largest limit (topk) per query or search
META_DIM = 2  # every Milvus collection needs a vector field, the meta one too
OVERFETCH = 8  # "fetch" group filter: rows fetched per row wanted, times 8 per further round
OVERFETCH_MAX = 4096  # past this many rows Milvus filters itself
FLUSH_ROWS = 5000  # rows written to a collection before it is flushed (sealed)
FILTERS = ("fetch", "milvus")
CONSISTENCY = ("Strong", "Session", "Bounded", "Eventually")  # of searches (?consistency=)
# The index a server gets by default (see the module docstring, "Index"): FLAT, exact. HNSW
# (?index=HNSW) is built with M and efConstruction and searched with ef = max(HNSW_EF, rows
# asked for); IVF_* with nlist / nprobe.
SERVER_INDEX = "FLAT"
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF = 16, 200, 2048
IVF_NLIST, IVF_NPROBE = 1024, 64
INDEX_OPTIONS = ("m", "ef_construction", "ef", "nlist", "nprobe")  # URL options, whole numbers
UPSERTS = frozenset({"face_upsert", "person_upsert"})

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


class MilvusUnavailable(RuntimeError):
    """pymilvus (or milvus-lite for a file) is not installed, or the server did not answer."""


def parse_url(url: str) -> dict:
    """``milvus://host:port[?prefix=&index=&token=&filter=]`` or ``milvus-lite:path.db[?...]``
    -> {uri, prefix, index, token, group_filter} for :class:`MilvusIndex`."""
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme == "milvus":
        if not parts.hostname:
            raise ValueError(f"{url!r}: milvus://host:port expected")
        uri = f"http://{parts.hostname}:{parts.port or 19530}"
        index = query.get("index", SERVER_INDEX)
        group_filter = query.get("filter", "milvus")
    elif parts.scheme == "milvus-lite":
        path = (parts.netloc + parts.path) if parts.netloc else parts.path
        if not path.endswith(".db"):
            raise ValueError(f"{url!r}: a Milvus Lite file must end in .db")
        uri = path
        index = query.get("index", "FLAT")
        group_filter = query.get("filter", "fetch")
    else:
        raise ValueError(f"{url!r}: milvus://host:port or milvus-lite:file.db expected")
    prefix = query.get("prefix", "openiai")
    if not prefix.replace("_", "").isalnum() or not prefix[0].isalpha():
        raise ValueError(f"prefix {prefix!r}: letters, digits and _ only, a letter first")
    if group_filter not in FILTERS:
        raise ValueError(f"filter {group_filter!r}: one of {', '.join(FILTERS)}")
    consistency = query.get("consistency", "Strong").capitalize()
    if consistency not in CONSISTENCY:
        raise ValueError(f"consistency {query['consistency']!r}: one of {', '.join(CONSISTENCY)}")
    options = {}
    for name in INDEX_OPTIONS:
        if name in query:
            try:
                options[name] = int(query[name])
            except ValueError:
                raise ValueError(f"{name}={query[name]!r}: a whole number expected") from None
            if options[name] < 1:
                raise ValueError(f"{name}={options[name]}: 1 or more expected")
    return {"uri": uri, "prefix": prefix, "index": index.upper(), "token": query.get("token", ""),
            "group_filter": group_filter, "options": options, "consistency": consistency}


def index_params(index_type: str, options: dict | None = None) -> dict:
    """The build parameters Milvus gets for `index_type` (URL options applied)."""
    o = options or {}
    if index_type == "HNSW":
        return {"M": o.get("m", HNSW_M), "efConstruction": o.get("ef_construction", HNSW_EF_CONSTRUCTION)}
    if index_type.startswith("IVF"):
        return {"nlist": o.get("nlist", IVF_NLIST)}
    return {}


def search_params(index_type: str, limit: int, options: dict | None = None) -> dict:
    """The search parameters for `limit` rows: HNSW's ef never below the rows asked for (an
    ef about the rows asked for gave recall@1 0.43 at 20,000 rows, as AUTOINDEX 0.42 at 100,000)."""
    o = options or {}
    params: dict = {"metric_type": "IP"}
    if index_type == "HNSW":
        params["params"] = {"ef": max(o.get("ef", HNSW_EF), int(limit))}
    elif index_type.startswith("IVF"):
        params["params"] = {"nprobe": o.get("nprobe", IVF_NPROBE)}
    return params


def client_for(uri: str, token: str = ""):
    """One MilvusClient per uri in this process (Milvus Lite runs one server per file)."""
    with _clients_lock:
        if uri not in _clients:
            try:
                from pymilvus import MilvusClient
            except ImportError as exc:
                raise MilvusUnavailable("the Milvus engine needs pymilvus: pip install 'openiai[milvus]'") from exc
            try:
                _clients[uri] = MilvusClient(uri, token=token) if token else MilvusClient(uri)
            except Exception as exc:
                raise MilvusUnavailable(f"Milvus at {uri} could not be opened: {exc}") from exc
        return _clients[uri]


def _ints(values) -> list[int]:
    return [int(v) for v in values]


def _in(values) -> str:
    return "[" + ",".join(str(int(v)) for v in values) + "]"


def _floats(vector) -> list[float]:
    """A stored vector as the float list an upsert takes."""
    return np.asarray(vector, np.float32).tolist()


def _person(row: dict) -> dict:
    """A queried person row as the row an upsert takes."""
    return {"pk": int(row["pk"]), "has_vec": bool(row["has_vec"]), "groups": _ints(row["groups"]),
            "vec": _floats(row["vec"])}


class MilvusIndex:
    """The Milvus :class:`~openiai.index.engine.VectorIndex` (see the module docstring)."""

    persistent = True

    def __init__(self, uri: str, prefix: str = "openiai", index: str = SERVER_INDEX, token: str = "",
                 dim: int | None = None, group_filter: str = "milvus", options: dict | None = None,
                 consistency: str = "Strong") -> None:
        from pymilvus import DataType, MilvusClient

        self._DataType, self._MilvusClient = DataType, MilvusClient
        self.client = client_for(uri, token)
        self.uri, self.prefix, self.index_type, self._dim = uri, prefix, index, dim
        self.group_filter, self.options, self.consistency = group_filter, dict(options or {}), consistency
        self._meta = f"{prefix}_meta"
        self._lock = threading.RLock()
        self._known: set[str] = set()
        self._unflushed: dict[str, int] = {}  # collection -> rows written since its last flush
        self._counts: dict[tuple, tuple[int, dict[str, int]]] = {}  # group_counts at a seq
        self._ensure_meta()
        self._seq = self._read_seq()

    @classmethod
    def from_url(cls, url: str, dim: int | None = None) -> "MilvusIndex":
        return cls(**parse_url(url), dim=dim)

    def describe(self) -> str:
        tuned = {**index_params(self.index_type, self.options),
                 **search_params(self.index_type, 10, self.options).get("params", {})}
        shown = "".join(f" {k}={v}" for k, v in tuned.items())
        return (f"Milvus {self.uri} prefix={self.prefix} index={self.index_type}{shown} "
                f"filter={self.group_filter} consistency={self.consistency}")

    # ---------------------------------------------------------------- names and schemas
    def dim(self, version: str) -> int:
        return self._dim or versions.get(version).dim

    def _name(self, account, version: str, kind: str) -> str:
        return f"{self.prefix}_a{int(account)}_v{str(version).encode().hex()}_{kind}"

    def _parse(self, name: str) -> tuple[int, str] | None:
        head = f"{self.prefix}_a"
        if not name.startswith(head) or not name.endswith("_faces"):
            return None
        body = name[len(head):-len("_faces")]
        account, _, version = body.partition("_v")
        try:
            return int(account), bytes.fromhex(version).decode()
        except ValueError:
            return None

    def _ensure_meta(self) -> None:
        if self.client.has_collection(self._meta):
            self.client.load_collection(self._meta)  # a reopened Milvus Lite file starts released
            return
        dt = self._DataType
        schema = self._MilvusClient.create_schema(auto_id=False)
        schema.add_field("pk", dt.INT64, is_primary=True)
        schema.add_field("seq", dt.INT64)
        schema.add_field("v", dt.FLOAT_VECTOR, dim=META_DIM)
        self._new_collection(self._meta, schema, "v", "FLAT")

    def _new_collection(self, name: str, schema, field: str, index_type: str) -> None:
        """Create, index and load a collection. The index is requested without waiting for it
        (create_collection with index_params polls for half a second per collection); loading
        waits for what it needs."""
        self.client.create_collection(name, schema=schema, consistency_level="Strong")
        params = self.client.prepare_index_params()
        params.add_index(field, index_type=index_type, metric_type="IP",
                         params=index_params(index_type, self.options))
        self.client.create_index(name, params, sync=False)
        self.client.load_collection(name)

    def _read_seq(self) -> int:
        rows = self.client.query(self._meta, filter="pk == 0", output_fields=["seq"])
        return int(rows[0]["seq"]) if rows else 0

    def _write_seq(self, seq: int) -> None:
        self.client.upsert(self._meta, [{"pk": 0, "seq": int(seq), "v": [0.0] * META_DIM}])
        self._seq = int(seq)

    def _create(self, account, version: str) -> tuple[str, str]:
        faces, persons = self._name(account, version, "faces"), self._name(account, version, "persons")
        if faces in self._known:
            return faces, persons
        dt, dim = self._DataType, self.dim(version)
        for name in (faces, persons):
            if self.client.has_collection(name):
                self.client.load_collection(name)
                continue
            schema = self._MilvusClient.create_schema(auto_id=False)
            schema.add_field("pk", dt.INT64, is_primary=True)
            if name == faces:
                schema.add_field("person", dt.INT64)
            else:
                schema.add_field("has_vec", dt.BOOL)
            schema.add_field("groups", dt.ARRAY, element_type=dt.INT64, max_capacity=MAX_GROUPS)
            schema.add_field("vec", dt.FLOAT_VECTOR, dim=dim)
            self._new_collection(name, schema, "vec", self.index_type)
        self._known.add(faces)
        return faces, persons

    def _existing(self, account, version: str) -> tuple[str, str] | None:
        faces = self._name(account, version, "faces")
        if faces in self._known:
            return faces, self._name(account, version, "persons")
        if self.client.has_collection(faces):
            persons = self._name(account, version, "persons")
            for name in (faces, persons):
                self.client.load_collection(name)  # released after a restart of Milvus Lite
            self._known.add(faces)
            return faces, persons
        return None

    # ---------------------------------------------------------------- row helpers
    def _query(self, name: str, expr: str, fields: list[str]) -> list[dict]:
        """Every row matching `expr`: one query when they fit in one, past that a query
        iterator (it pages by primary key; a Milvus server refuses offset + limit beyond
        16,384, its ``maxQueryResultWindow``, so offset paging fails there - Milvus Lite
        does not check)."""
        rows = self.client.query(name, filter=expr, output_fields=fields, limit=QUERY_LIMIT)
        if len(rows) < QUERY_LIMIT:
            return rows
        out, it = [], self.client.query_iterator(name, batch_size=QUERY_LIMIT, filter=expr,
                                                 output_fields=fields)
        try:
            while batch := it.next():
                out.extend(batch)
        finally:
            it.close()
        return out

    def _count(self, name: str, expr: str = "") -> int:
        rows = self.client.query(name, filter=expr, output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def _upsert(self, name: str, rows: list[dict]) -> None:
        for s in range(0, len(rows), BATCH):
            self.client.upsert(name, rows[s:s + BATCH])
        self._written(name, len(rows))

    def _written(self, name: str, rows: int) -> None:
        """Flush (seal) a collection every FLUSH_ROWS rows written: see the module docstring."""
        self._unflushed[name] = self._unflushed.get(name, 0) + rows
        if self._unflushed[name] >= FLUSH_ROWS:
            self._flush(name)

    def _flush(self, name: str) -> None:
        self._unflushed.pop(name, None)
        self.client.flush(name)

    def _person_row(self, persons: str, person_pk: int, dim: int) -> dict:
        rows = self.client.query(persons, filter=f"pk == {int(person_pk)}",
                                 output_fields=["pk", "has_vec", "groups", "vec"])
        if rows:
            return {**_person(rows[0]), "stored": True}
        return {"pk": int(person_pk), "has_vec": False, "groups": [], "vec": [0.0] * dim, "stored": False}

    def _regroup_faces(self, faces: str, person_pk: int, groups: list[int]) -> None:
        rows = self._query(faces, f"person == {int(person_pk)}", ["pk", "person", "vec"])
        self._upsert(faces, [{"pk": int(r["pk"]), "person": int(r["person"]), "groups": groups,
                              "vec": _floats(r["vec"])} for r in rows])

    def _set_groups(self, account, version, person_pk: int, change, create: bool = True) -> None:
        """Person `person_pk` gets groups ``change(old groups)``; a missing person is created
        with them, or with ``create=False`` left missing."""
        names = self._create(account, version) if create else self._existing(account, version)
        if names is None:
            return
        faces, persons = names
        row = self._person_row(persons, person_pk, self.dim(version))
        stored = row.pop("stored")
        if not (stored or create):
            return
        groups = sorted(set(change(set(row["groups"]))))
        if groups != row["groups"] or not stored:
            row["groups"] = groups
            self._upsert(persons, [row])
            self._regroup_faces(faces, person_pk, groups)

    # ---------------------------------------------------------------- writes (replay.Writes)
    def upsert_face(self, account, version, face_pk: int, person_pk: int, vector) -> None:
        faces, persons = self._create(account, version)
        dim = self.dim(version)
        row = self._person_row(persons, person_pk, dim)
        if not row.pop("stored"):
            self._upsert(persons, [row])
        vec = normalize(as_vector(vector, dim)).reshape(-1)
        self._upsert(faces, [{"pk": int(face_pk), "person": int(person_pk), "groups": row["groups"],
                              "vec": vec.tolist()}])

    def remove_faces(self, account, version, face_pks: Iterable[int]) -> int:
        names = self._existing(account, version)
        pks = _ints(face_pks)
        if names is None or not pks:
            return 0
        present = self._count(names[0], f"pk in {_in(pks)}")
        if present:
            self.client.delete(names[0], ids=pks)
        return present

    def set_person(self, account, version, person_pk: int, fused_vector,
                   group_pks: Iterable[int] | None = None) -> None:
        faces, persons = self._create(account, version)
        dim = self.dim(version)
        row = self._person_row(persons, person_pk, dim)
        row.pop("stored")
        if fused_vector is not None:
            row["vec"] = normalize(as_vector(fused_vector, dim)).reshape(-1).tolist()
            row["has_vec"] = True
        old = row["groups"]
        if group_pks is not None:
            row["groups"] = sorted(set(_ints(group_pks)))
        self._upsert(persons, [row])
        if row["groups"] != old:
            self._regroup_faces(faces, person_pk, row["groups"])

    def remove_persons(self, account, version, person_pks: Iterable[int]) -> int:
        names = self._existing(account, version)
        pks = _ints(person_pks)
        if names is None or not pks:
            return 0
        present = self._count(names[1], f"pk in {_in(pks)}")
        self.client.delete(names[0], filter=f"person in {_in(pks)}")
        if present:
            self.client.delete(names[1], ids=pks)
        return present

    def add_memberships(self, account, version, person_pk: int, group_pks: Iterable[int]) -> None:
        add = set(_ints(group_pks))
        self._set_groups(account, version, person_pk, lambda old: old | add)

    def remove_memberships(self, account, version, person_pk: int, group_pks: Iterable[int]) -> None:
        drop = set(_ints(group_pks))
        self._set_groups(account, version, person_pk, lambda old: old - drop, create=False)

    def remove_group(self, account, version, group_pk: int) -> None:
        names = self._existing(account, version)
        if names is None:
            return
        g = int(group_pk)
        for name, fields in ((names[1], ["pk", "has_vec", "groups", "vec"]), (names[0], ["pk", "person", "groups", "vec"])):
            rows = self._query(name, f"array_contains(groups, {g})", fields)
            for r in rows:
                r["groups"] = [x for x in _ints(r["groups"]) if x != g]
                r["vec"] = _floats(r["vec"])
            self._upsert(name, rows)

    def drop(self, account, version) -> None:
        for kind in ("faces", "persons"):
            name = self._name(account, version, kind)
            self._known.discard(name)
            self._unflushed.pop(name, None)
            if self.client.has_collection(name):
                self.client.drop_collection(name)

    # ---------------------------------------------------------------- change log and rebuild
    @property
    def last_seq(self) -> int:
        return self._seq

    def refresh(self) -> int:
        """Re-read ``last_seq`` from Milvus (another process may feed the same collections)."""
        with self._lock:
            self._seq = self._read_seq()
            return self._seq

    def apply(self, changes: Iterable[Change]) -> int:
        """Changes in seq order; a run of face / person upserts of one collection (what an
        enrolment logs) is carried out as one batch (:meth:`_apply_upserts`), the rest one by one."""
        with self._lock:
            done = self._seq
            run: list[Change] = []
            try:
                for ch in changes:
                    if ch.seq <= done or (run and ch.seq <= run[-1].seq):
                        continue
                    if ch.kind in UPSERTS and (not run or (ch.account, ch.version) == (run[0].account, run[0].version)):
                        run.append(ch)
                        continue
                    if run:
                        self._apply_upserts(run)
                        done, run = run[-1].seq, []
                    if ch.kind in UPSERTS:
                        run.append(ch)
                        continue
                    apply_change(self, ch)
                    done = ch.seq
                if run:
                    self._apply_upserts(run)
                    done = run[-1].seq
            finally:
                if done != self._seq:
                    self._write_seq(done)
            return self._seq

    def _apply_upserts(self, run: list[Change]) -> None:
        """face_upsert / person_upsert changes of one collection, with the effect of applying
        them in order: person rows are read once, changed in memory, and written once with the
        faces (a face takes its person's final groups; a regrouped person's stored faces are
        rewritten)."""
        account, version = run[0].account, run[0].version
        faces, persons = self._create(account, version)
        dim = self.dim(version)
        mentioned = sorted({int(ch.payload["person"]) for ch in run})
        stored = {int(r["pk"]): _person(r)
                  for r in self._query(persons, f"pk in {_in(mentioned)}", ["pk", "has_vec", "groups", "vec"])}
        rows = {p: dict(stored[p]) if p in stored else {"pk": p, "has_vec": False, "groups": [], "vec": [0.0] * dim} for p in mentioned}
        new_faces: dict[int, tuple[int, list[float]]] = {}
        for ch in run:
            p = int(ch.payload["person"])
            if ch.kind == "face_upsert":
                new_faces[int(ch.payload["face"])] = (p, normalize(as_vector(ch.payload["vector"], dim)).reshape(-1).tolist())
                continue
            if ch.payload.get("vector") is not None:
                rows[p]["vec"] = normalize(as_vector(ch.payload["vector"], dim)).reshape(-1).tolist()
                rows[p]["has_vec"] = True
            if ch.payload.get("groups") is not None:
                rows[p]["groups"] = sorted(set(_ints(ch.payload["groups"])))
        self._upsert(persons, list(rows.values()))
        regrouped = [p for p in mentioned if p in stored and stored[p]["groups"] != rows[p]["groups"]]
        if regrouped:
            for r in self._query(faces, f"person in {_in(regrouped)}", ["pk", "person", "vec"]):
                new_faces.setdefault(int(r["pk"]), (int(r["person"]), _floats(r["vec"])))
        self._upsert(faces, [{"pk": f, "person": p, "groups": rows[p]["groups"], "vec": v}
                             for f, (p, v) in new_faces.items()])

    def clear(self) -> None:
        with self._lock:
            for name in self.client.list_collections():
                if name.startswith(f"{self.prefix}_a") and name.rsplit("_", 1)[-1] in ("faces", "persons"):
                    self.client.drop_collection(name)
            self._known.clear()
            self._unflushed.clear()
            self._write_seq(0)

    def bulk_load(self, account, version, *, face_pks, face_person_pks, face_vectors,
                  person_pks, person_vectors, member_person_pks, member_group_pks) -> None:
        dim = self.dim(version)
        self.drop(account, version)
        faces, persons = self._create(account, version)
        face_pks, face_person = np.asarray(face_pks, np.int64), np.asarray(face_person_pks, np.int64)
        person_pks = np.asarray(person_pks, np.int64)
        groups: dict[int, list[int]] = {}
        for p, g in zip(_ints(member_person_pks), _ints(member_group_pks)):
            groups.setdefault(p, []).append(g)
        groups = {p: sorted(set(gs)) for p, gs in groups.items()}
        fv = normalize(np.asarray(face_vectors, np.float32).reshape(-1, dim))
        pv = normalize(np.asarray(person_vectors, np.float32).reshape(-1, dim))
        with_vec = dict(zip(person_pks.tolist(), range(len(person_pks))))
        everyone = sorted(set(person_pks.tolist()) | set(face_person.tolist()) | set(groups))
        zero = [0.0] * dim
        for s in range(0, len(face_pks), BATCH):
            self.client.insert(faces, [
                {"pk": int(f), "person": int(p), "groups": groups.get(int(p), []), "vec": v.tolist()}
                for f, p, v in zip(face_pks[s:s + BATCH], face_person[s:s + BATCH], fv[s:s + BATCH])])
        for s in range(0, len(everyone), BATCH):
            rows = []
            for p in everyone[s:s + BATCH]:
                i = with_vec.get(p)
                rows.append({"pk": p, "has_vec": i is not None, "groups": groups.get(p, []),
                             "vec": zero if i is None else pv[i].tolist()})
            self.client.insert(persons, rows)
        for name in (faces, persons):  # sealed: searched ~20x faster than growing segments
            self._flush(name)

    def finish_rebuild(self, seq: int) -> None:
        with self._lock:
            self._write_seq(seq)

    def wait_indexed(self, timeout: float = 600.0) -> bool:
        """Wait until every collection's vector index covers all its rows and the query nodes
        search it (a server builds it in the background, then hands the indexed segments over;
        until then it answers from growing or unindexed segments through its *interim* index,
        IVF with nlist 128 / nprobe 16 on 2.3, whatever ef or nprobe is asked for: recall@1
        0.69 at 20,000 rows here). ``openiai bench search`` waits so as to time the index.
        False on timeout."""
        import time

        deadline = time.monotonic() + timeout
        names = [n for n in self.client.list_collections() if n.startswith(f"{self.prefix}_a")]
        while time.monotonic() < deadline:
            pending = 0
            for name in names:
                info = self.client.describe_index(name, "vec") or {}
                pending += int(info.get("pending_index_rows", 0) or 0)
                pending += int(info.get("total_rows", 0) or 0) - int(info.get("indexed_rows", 0) or 0)
                pending += self._rows_searched_without_index(name)
            if pending <= 0:
                return True
            time.sleep(0.5)
        return False

    def _rows_searched_without_index(self, name: str) -> int:
        """Rows the query nodes hold in segments not searched through the collection's index
        (growing, or sealed and loaded without it); 0 where the segment view is not offered
        (Milvus Lite)."""
        try:
            segments = self.client._get_connection().get_query_segment_info(name)
        except Exception:
            return 0
        sealed = 3  # common_pb2.SegmentState.Sealed
        return sum(int(s.num_rows) for s in segments if int(s.state) != sealed or not s.index_name)

    # ---------------------------------------------------------------- reads
    def collections(self) -> list[tuple[Any, str]]:
        found = (self._parse(n) for n in self.client.list_collections())
        return sorted(c for c in found if c is not None)

    def counts(self, account, version: str) -> dict[str, int]:
        names = self._existing(account, version)
        if names is None:
            return {"faces": 0, "persons": 0}
        return {"faces": self._count(names[0]), "persons": self._count(names[1])}

    @staticmethod
    def _group_expr(group_pks) -> str | None:
        """The filter for `group_pks` ('' = everything), or None when it can match nothing."""
        if group_pks is None:
            return ""
        gs = sorted(set(_ints(group_pks)))
        return f"array_contains_any(groups, {_in(gs)})" if gs else None

    def group_counts(self, account, version: str, group_pks: Iterable[int]) -> dict[str, int]:
        names = self._existing(account, version)
        gs = tuple(sorted(set(_ints(group_pks))))
        expr = self._group_expr(gs)
        if names is None or expr is None:
            return {"faces": 0, "persons": 0}
        seq, key = self._seq, (names[0], gs)
        cached = self._counts.get(key)
        if cached is not None and cached[0] == seq:
            return dict(cached[1])
        counts = {"faces": self._count(names[0], expr), "persons": self._count(names[1], f"{expr} and has_vec == true")}
        if len(self._counts) > 10_000:
            self._counts.clear()
        self._counts[key] = (seq, counts)
        return dict(counts)

    def _queries(self, version: str, queries) -> np.ndarray:
        return normalize(np.asarray(queries, np.float32).reshape(-1, self.dim(version)))

    def _search(self, name: str, q: np.ndarray, expr: str, k: int, fields: list[str]) -> list[list[dict]]:
        limit = min(k, QUERY_LIMIT)
        try:
            res = self.client.search(name, data=q.tolist(), filter=expr, limit=limit,
                                     output_fields=fields, anns_field="vec",
                                     search_params=search_params(self.index_type, limit, self.options),
                                     consistency_level=self.consistency)
        except Exception:
            if not self.client.has_collection(name):  # dropped meanwhile (another process)
                self._known.discard(name)
                return [[] for _ in range(len(q))]
            raise
        return [list(row) for row in res]

    def _search_groups(self, name: str, q: np.ndarray, group_pks, k: int, fields: list[str],
                       base: str = "") -> list[list[dict]] | None:
        """The best `k` rows per query in `group_pks` (None: every row) that also match
        `base`; None when the groups can match nothing. Filtered by Milvus or, with the
        ``fetch`` filter, here (see the module docstring)."""
        group_pks = None if group_pks is None else _ints(group_pks)
        expr = self._group_expr(group_pks)
        if expr is None:
            return None
        both = " and ".join(f"({e})" for e in (expr, base) if e)
        if not expr or self.group_filter == "milvus":
            return self._search(name, q, both, k, fields)
        wanted = set(group_pks)
        out: list[list[dict] | None] = [None] * len(q)
        todo, limit = list(range(len(q))), min(k * OVERFETCH, OVERFETCH_MAX)
        while todo:
            again = []
            for i, row in zip(todo, self._search(name, q[todo], base, limit, [*fields, "groups"])):
                kept = [h for h in row if wanted.intersection(h["entity"]["groups"])]
                if len(kept) >= k or len(row) < limit:  # enough, or every row seen
                    out[i] = kept[:k]
                else:
                    again.append(i)
            if again and limit >= OVERFETCH_MAX:  # too small a share of the rows: Milvus filters
                for i, row in zip(again, self._search(name, q[again], both, k, fields)):
                    out[i] = row
                again = []
            todo, limit = again, min(limit * OVERFETCH, OVERFETCH_MAX)
        return out

    def search_faces(self, account, version, queries, group_pks: Iterable[int] | None, k: int,
                     unique_persons: bool = True) -> list[list[Hit]]:
        q = self._queries(version, queries)
        names = self._existing(account, version)
        found = None if names is None or k <= 0 else self._search_groups(
            names[0], q, group_pks, k * MAX_FACES_PER_PERSON if unique_persons else k, ["person"])
        if found is None:
            return [[] for _ in range(len(q))]
        out = []
        for row in found:
            hits, seen = [], set()
            for h in row:
                p = int(h["entity"]["person"])
                if unique_persons:
                    if p in seen:
                        continue
                    seen.add(p)
                hits.append(Hit(int(h["id"] if "id" in h else h["pk"]), p, float(h["distance"])))
                if len(hits) == k:
                    break
            out.append(hits)
        return out

    def search_persons(self, account, version, queries, group_pks: Iterable[int] | None,
                       k: int) -> list[list[Hit]]:
        q = self._queries(version, queries)
        names = self._existing(account, version)
        found = None if names is None or k <= 0 else self._search_groups(
            names[1], q, group_pks, k, ["pk"], base="has_vec == true")
        if found is None:
            return [[] for _ in range(len(q))]
        return [[Hit(None, int(h["id"] if "id" in h else h["pk"]), float(h["distance"])) for h in row]
                for row in found]

    def search_faces_by_group(self, account, version, queries, group_pks: Iterable[int], k: int,
                              unique_persons: bool = True) -> list[dict[int, list[Hit]]]:
        q = self._queries(version, queries)
        return by_group(lambda gs: self.search_faces(account, version, q, gs, k, unique_persons), len(q), group_pks)

    def search_persons_by_group(self, account, version, queries, group_pks: Iterable[int],
                                k: int) -> list[dict[int, list[Hit]]]:
        q = self._queries(version, queries)
        return by_group(lambda gs: self.search_persons(account, version, q, gs, k), len(q), group_pks)

    # ---------------------------------------------------------------- local snapshots: none
    def snapshot(self, directory, seq: int | None = None):
        raise NotImplementedError("Milvus keeps its content itself (persistent engine)")

    def load(self, directory) -> int:
        raise NotImplementedError("Milvus keeps its content itself (persistent engine)")
