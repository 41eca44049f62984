"""Vector search over the current tenant's entry embeddings: the entries nearest a question's vector.

`nearest_entries(model_id, query, limit=...)`: the enabled entries of the current tenant with the
highest cosine between the query and any of their vectors (kinds "title" and "full", best of the
entry's), best first. Two backends give the same result (kb/tests/test_vectors.py):

- exact: the tenant's vectors of the model as one float32 matrix in this process, a matrix-vector
  product and argpartition (10,000 entries x 2 vectors x 512 dims: a few ms). The matrix is cached
  per (schema, model, embeddings_version()), so any change of vectors or of which entries are
  enabled (kb.embeddings bumps the version on commit) loads it again; the cache is an LRU bounded by
  KB_VECTOR_CACHE_MB, shared by the process's threads.
- pgvector: when the database has the `vector` extension (scripts/ensure_pgvector.sh installs it,
  tenants' migration 0002 creates it): a side table `kb_entryvector` in the tenant's schema (one row
  per EntryEmbedding, deleted with it) with one HNSW index per model, `embedding::vector(<dims>)`
  with cosine ops, partial on the model id, since the dimensions differ per model. Table and index
  are created by `sync_vector_index()` (idempotent; the embedding job calls it after writing vectors,
  a search runs it when the version moved and few rows are missing), not by a migration, because
  the extension may not exist. A search uses the index only while the table holds exactly the
  model's vectors; otherwise (not yet synced, > 2000 dims) it answers with the exact backend.

KB_VECTOR_BACKEND: "auto" (pgvector when available and in sync, else exact), "exact", "pgvector"
(fails when the extension is missing; syncs before searching).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import structlog
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction

from kb.embeddings import embeddings_version
from kb.models import EntryEmbedding, KnowledgeEntry

logger = structlog.get_logger("kb.vectors")

KINDS = tuple(EntryEmbedding.Kind.values)  # ("title", "full")
HNSW_MAX_DIMS = 2000  # pgvector indexes `vector` up to 2,000 dimensions
INLINE_SYNC_MAX = 64  # a search adds at most this many missing rows itself (the job adds the rest)
DEFAULT_EF_SEARCH = 100

_EMBEDDINGS = EntryEmbedding._meta.db_table
_ENTRIES = KnowledgeEntry._meta.db_table
_SIDE_TABLE = "kb_entryvector"


@dataclass(frozen=True)
class VectorMatch:
    entry_id: int
    cosine: float  # of the entry's best vector (kind) with the query, in [-1, 1]
    kind: str


def nearest_entries(model_id: str, query: np.ndarray, *, limit: int, kinds: tuple[str, ...] = KINDS,
                    backend: str | None = None) -> list[VectorMatch]:
    """The current tenant's enabled entries nearest `query` under `model_id`, best cosine first (ties: entry id)."""
    kinds = tuple(kind for kind in KINDS if kind in kinds)
    query = _unit(query)
    if limit < 1 or not kinds:
        return []
    if _use_pgvector(model_id, query.shape[0], backend):
        return _pgvector_nearest(model_id, query, limit=limit, kinds=kinds)
    return _exact_nearest(model_id, query, limit=limit, kinds=kinds)


@dataclass(frozen=True)
class VectorHits:
    nearest: list[VectorMatch]  # the query's nearest entries, as nearest_entries() returns them
    cosines: dict[int, float]  # each asked entry (`also`) not among them -> its best cosine; absent: no vector


def search_many(model_id: str, queries: list[np.ndarray], *, limit: int, also: list[set[int]],
                kinds: tuple[str, ...] = KINDS, backend: str | None = None) -> list[VectorHits]:
    """nearest_entries() of each query, plus the best cosine of the entries in its `also` set that are not among
    its nearest (a lexical candidate's vector side): a round of questions in one go. The backend is chosen once;
    the exact backend takes everything from the cached matrix (no SQL), pgvector reads the asked entries'
    vectors in one statement. Results are those of nearest_entries() and of each entry's vectors @ query."""
    kinds = tuple(kind for kind in KINDS if kind in kinds)
    queries = [_unit(query) for query in queries]
    if not queries or limit < 1 or not kinds:
        return [VectorHits(nearest=[], cosines={}) for _ in queries]
    dims = queries[0].shape[0]
    if _use_pgvector(model_id, dims, backend):
        nearest = [_pgvector_nearest(model_id, query, limit=limit, kinds=kinds) for query in queries]
        rest = [ids - {match.entry_id for match in near} for ids, near in zip(also, nearest, strict=True)]
        stored = _stored_vectors(model_id, set().union(*rest), kinds)
        return [VectorHits(nearest=near, cosines={pk: float(np.max(stored[pk] @ query)) for pk in ids if pk in stored})
                for query, ids, near in zip(queries, rest, nearest, strict=True)]
    matrix = matrix_cache.get(connection.schema_name, model_id)
    usable = len(matrix.entry_ids) and matrix.vectors.shape[1] == dims
    nearest = [_exact_nearest_in(matrix, query, limit=limit, kinds=kinds) for query in queries]
    out, missing = [], []
    for query, ids, near in zip(queries, also, nearest, strict=True):
        cosines = {}
        for pk in ids - {match.entry_id for match in near}:
            rows = matrix.rows_of(pk, kinds) if usable else ()
            if len(rows):
                cosines[pk] = float(np.max(matrix.vectors[rows] @ query))
            else:
                missing.append(pk)
        out.append(VectorHits(nearest=near, cosines=cosines))
    if missing:
        # Not in the matrix: not embedded yet (usually), or written in a transaction whose version bump has not
        # reached this process. One statement for the round reads what the database holds.
        stored = _stored_vectors(model_id, set(missing), kinds)
        for query, ids, hit in zip(queries, also, out, strict=True):
            hit.cosines.update({pk: float(np.max(stored[pk] @ query)) for pk in ids
                                if pk in stored and pk not in hit.cosines
                                and pk not in {match.entry_id for match in hit.nearest}})
    return out


def _use_pgvector(model_id: str, dims: int, backend: str | None) -> bool:
    backend = backend or settings.KB_VECTOR_BACKEND
    if backend not in ("auto", "exact", "pgvector"):
        raise ImproperlyConfigured(f"KB_VECTOR_BACKEND must be auto, exact or pgvector, not {backend!r}")
    if backend != "exact" and dims <= HNSW_MAX_DIMS:
        if pgvector_version() is not None:
            return _pgvector_ready(model_id, dims=dims, forced=backend == "pgvector")
        if backend == "pgvector":
            raise ImproperlyConfigured("KB_VECTOR_BACKEND=pgvector, but the database has no `vector` extension "
                                       "(scripts/ensure_pgvector.sh)")
    return False


def _stored_vectors(model_id: str, entry_ids: set[int], kinds: tuple[str, ...]) -> dict[int, np.ndarray]:
    """The stored vectors (one row per kind) of these entries under the model, in one statement."""
    if not entry_ids:
        return {}
    rows: dict[int, list[np.ndarray]] = {}
    for entry_id, vector in (EntryEmbedding.objects.filter(entry_id__in=entry_ids, model_id=model_id, kind__in=kinds)
                             .values_list("entry_id", "vector")):
        rows.setdefault(entry_id, []).append(np.frombuffer(bytes(vector), dtype="<f4"))
    return {entry_id: np.stack(vectors) for entry_id, vectors in rows.items()}


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _best_per_entry(entry_ids, kinds, cosines, limit: int) -> list[VectorMatch]:
    """Rows sorted by cosine (desc) then entry id: the first row of each entry, `limit` entries."""
    seen: set[int] = set()
    matches = []
    for entry_id, kind, cosine in sorted(zip(entry_ids, kinds, cosines, strict=True),
                                         key=lambda row: (-row[2], row[0])):
        if entry_id in seen:
            continue
        seen.add(entry_id)
        matches.append(VectorMatch(entry_id=int(entry_id), cosine=float(cosine), kind=kind))
        if len(matches) == limit:
            break
    return matches


# -- exact, in process -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Matrix:
    version: int
    entry_ids: np.ndarray  # int64, one per row
    kinds: np.ndarray  # int8 index into KINDS, one per row
    vectors: np.ndarray  # float32 (rows, dims)

    @property
    def nbytes(self) -> int:
        return self.entry_ids.nbytes + self.kinds.nbytes + self.vectors.nbytes

    def rows_of(self, entry_id: int, kinds: tuple[str, ...]) -> np.ndarray:
        """The rows of one entry's vectors of these kinds (rows are ordered by entry id: a binary search)."""
        start, stop = np.searchsorted(self.entry_ids, [entry_id, entry_id + 1])
        rows = np.arange(start, stop)
        return rows[np.isin(self.kinds[rows], [KINDS.index(kind) for kind in kinds])]


class _MatrixCache:
    """(schema, model) -> the newest _Matrix, least recently used first; bounded in bytes."""

    def __init__(self):
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()  # one load at a time: a burst of searches loads once
        self._items: OrderedDict[tuple[str, str], _Matrix] = OrderedDict()

    def get(self, schema: str, model_id: str) -> _Matrix:
        version = embeddings_version()  # read BEFORE loading: a change during the load bumps it again
        key = (schema, model_id)
        with self._lock:
            cached = self._items.get(key)
            if cached is not None and cached.version == version:
                self._items.move_to_end(key)
                return cached
        with self._load_lock:
            with self._lock:
                cached = self._items.get(key)
                if cached is not None and cached.version == version:
                    return cached
            matrix = _load_matrix(model_id, version)
            self._put(key, matrix)
            return matrix

    def _put(self, key: tuple[str, str], matrix: _Matrix) -> None:
        cap = settings.KB_VECTOR_CACHE_MB * 1024 * 1024
        with self._lock:
            self._items.pop(key, None)
            if matrix.nbytes > cap:
                logger.warning("kb.vectors.cache_too_small", tenant=key[0], model=key[1], megabytes=matrix.nbytes >> 20)
                return
            self._items[key] = matrix
            while sum(item.nbytes for item in self._items.values()) > cap:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def keys(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._items)


matrix_cache = _MatrixCache()


_MATRIX_SQL = """
SELECT v.entry_id, v.kind, v.dims, v.vector FROM {embeddings} v JOIN {entries} e ON e.id = v.entry_id
WHERE v.model_id = %s AND e.enabled ORDER BY v.entry_id, v.kind
"""


def _load_matrix(model_id: str, version: int) -> _Matrix:
    with connection.cursor() as cursor:
        cursor.execute(
            _MATRIX_SQL.format(**_TABLES), [model_id])
        rows = cursor.fetchall()
    dims = max((row[2] for row in rows), key=[row[2] for row in rows].count, default=0)
    rows = [row for row in rows if row[2] == dims and len(row[3]) == dims * 4]  # a model has one size
    vectors = np.frombuffer(b"".join(bytes(row[3]) for row in rows), dtype="<f4").astype(np.float32)
    return _Matrix(version=version, entry_ids=np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows)),
                   kinds=np.fromiter((KINDS.index(row[1]) for row in rows), dtype=np.int8, count=len(rows)),
                   vectors=vectors.reshape(len(rows), dims))


def _exact_nearest(model_id: str, query: np.ndarray, *, limit: int, kinds: tuple[str, ...]) -> list[VectorMatch]:
    return _exact_nearest_in(matrix_cache.get(connection.schema_name, model_id), query, limit=limit, kinds=kinds)


def _exact_nearest_in(matrix: _Matrix, query: np.ndarray, *, limit: int, kinds: tuple[str, ...]) -> list[VectorMatch]:
    if not len(matrix.entry_ids) or matrix.vectors.shape[1] != query.shape[0]:
        return []
    cosines = matrix.vectors @ query
    if len(kinds) < len(KINDS):
        cosines = np.where(np.isin(matrix.kinds, [KINDS.index(kind) for kind in kinds]), cosines, -np.inf)
    # an entry has at most len(kinds) rows, so the best limit*len(kinds) rows hold its best `limit` entries
    take = min(limit * len(kinds), len(cosines))
    top = np.argpartition(-cosines, take - 1)[:take] if take < len(cosines) else np.arange(len(cosines))
    top = top[np.isfinite(cosines[top])]
    return _best_per_entry(matrix.entry_ids[top].tolist(), [KINDS[k] for k in matrix.kinds[top]],
                           cosines[top].tolist(), limit)


# -- pgvector ---------------------------------------------------------------------------------------

_extension_versions: dict[str, str | None] = {}  # database name -> the extension's version, or None
_synced: dict[tuple[str, str, str], int] = {}  # (database, schema, model) -> the version seen in sync
_sync_lock = threading.Lock()


def pgvector_version() -> str | None:
    """The `vector` extension's version in this database (asked once per process), or None."""
    database = connection.settings_dict["NAME"]
    if database not in _extension_versions:
        with connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cursor.fetchone()
        _extension_versions[database] = row[0] if row else None
    return _extension_versions[database]


def pgvector_available() -> bool:
    """Whether searches may use pgvector: KB_VECTOR_BACKEND is not "exact" and the database has the extension."""
    return settings.KB_VECTOR_BACKEND != "exact" and pgvector_version() is not None


def _literal(text: str) -> str:
    # standard_conforming_strings is on (PostgreSQL's default since 9.1): only quotes need doubling
    if "\x00" in text:
        raise ValueError("a model id cannot hold NUL")
    return "'" + text.replace("'", "''") + "'"


def _index_name(model_id: str, dims: int) -> str:
    return f"kb_entryvector_hnsw_{hashlib.sha256(model_id.encode()).hexdigest()[:12]}_{dims}"


def _side_table_exists() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [f"{connection.schema_name}.{_SIDE_TABLE}"])
        return cursor.fetchone()[0]


def ensure_vector_index(*, model_id: str, dims: int) -> bool:
    """The side table and this model's HNSW index in the current tenant's schema (idempotent). False when
    the database has no pgvector or the model has too many dimensions for an index."""
    if pgvector_version() is None or not 0 < dims <= HNSW_MAX_DIMS:
        return False
    with transaction.atomic(), connection.cursor() as cursor:
        # Two workers creating the same table at once would collide in pg_type: one at a time per schema.
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"kb.vectors:{connection.schema_name}"])
        cursor.execute(f"""
            CREATE TABLE IF NOT EXISTS {_SIDE_TABLE} (
                embedding_id bigint PRIMARY KEY REFERENCES {_EMBEDDINGS} (id) ON DELETE CASCADE,
                entry_id bigint NOT NULL,
                kind varchar(16) NOT NULL,
                model_id varchar(120) NOT NULL,
                text_hash varchar(64) NOT NULL,
                embedding vector NOT NULL
            )""")
        # Built while the model has no rows yet (the sync fills it after), so creating it costs nothing.
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {_index_name(model_id, dims)} ON {_SIDE_TABLE} "
                       f"USING hnsw ((embedding::vector({dims})) vector_cosine_ops) "
                       f"WHERE model_id = {_literal(model_id)}")
    return True


_STALE_SQL = """
SELECT v.id, v.entry_id, v.kind, v.text_hash, v.vector FROM {embeddings} v
LEFT JOIN {side} s ON s.embedding_id = v.id
WHERE v.model_id = %(model)s AND v.dims = %(dims)s AND (s.embedding_id IS NULL OR s.text_hash <> v.text_hash)
"""
_STALE_COUNT_SQL = "SELECT count(*) FROM ({stale}) stale"
_UPSERT_SQL = """
INSERT INTO {side} (embedding_id, entry_id, kind, model_id, text_hash, embedding)
SELECT u.id, u.entry_id, u.kind, %(model)s, u.text_hash, u.embedding::vector
FROM unnest(%(ids)s::bigint[], %(entries)s::bigint[], %(kinds)s::text[], %(hashes)s::text[], %(vectors)s::text[])
     AS u(id, entry_id, kind, text_hash, embedding)
ON CONFLICT (embedding_id) DO UPDATE SET text_hash = EXCLUDED.text_hash, embedding = EXCLUDED.embedding
"""
_TABLES = {"embeddings": _EMBEDDINGS, "entries": _ENTRIES, "side": _SIDE_TABLE}
# {distance}: the side table's vector cast to the model's size <=> the query; {model}: the model id as a
# literal, so that the planner matches the model's partial index.
_NEAREST_SQL = """
SELECT s.entry_id, s.kind, 1 - ({distance}) AS cosine
FROM {side} s JOIN {entries} e ON e.id = s.entry_id
WHERE s.model_id = {model} AND e.enabled AND s.kind = ANY(%(kinds)s)
ORDER BY {distance}
LIMIT %(take)s
"""


def _stale_count(model_id: str, dims: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(_STALE_COUNT_SQL.format(stale=_STALE_SQL.format(**_TABLES)), {"model": model_id, "dims": dims})
        return cursor.fetchone()[0]


def sync_vector_index(*, model_id: str, dims: int, batch: int = 500) -> int:
    """Copy the model's vectors that the side table lacks or holds for an older text (rows of deleted vectors
    go with them, ON DELETE CASCADE). Returns the number of rows written; 0 without pgvector."""
    if not ensure_vector_index(model_id=model_id, dims=dims):
        return 0
    written = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_STALE_SQL.format(**_TABLES) + " ORDER BY v.id LIMIT %(batch)s FOR SHARE OF v",
                           {"model": model_id, "dims": dims, "batch": batch})
            rows = cursor.fetchall()
            if not rows:
                return written
            texts = ["[" + ",".join(repr(x) for x in np.frombuffer(bytes(row[4]), dtype="<f4").tolist()) + "]"
                     for row in rows]
            cursor.execute(_UPSERT_SQL.format(**_TABLES), {
                "model": model_id, "ids": [row[0] for row in rows], "entries": [row[1] for row in rows],
                "kinds": [row[2] for row in rows], "hashes": [row[3] for row in rows], "vectors": texts})
            written += len(rows)


def _pgvector_ready(model_id: str, *, dims: int, forced: bool) -> bool:
    """Whether the side table holds exactly the model's vectors now; checked again whenever the version moved."""
    key = (connection.settings_dict["NAME"], connection.schema_name, model_id)
    version = embeddings_version()
    if _synced.get(key) == version:
        return True
    with _sync_lock:
        exists = _side_table_exists()
        if not exists and not forced:
            ready = False
        else:
            stale = _stale_count(model_id, dims) if exists else None
            if stale == 0:
                ready = True
            elif forced or (stale is not None and stale <= INLINE_SYNC_MAX):
                sync_vector_index(model_id=model_id, dims=dims)
                ready = True
            else:
                logger.info("kb.vectors.pgvector_behind", tenant=connection.schema_name, model=model_id, missing=stale)
                ready = False
        if ready:
            _synced[key] = version
        return ready


def _pgvector_nearest(model_id: str, query: np.ndarray, *, limit: int, kinds: tuple[str, ...]) -> list[VectorMatch]:
    dims = query.shape[0]
    take = limit * len(kinds)
    literal = "[" + ",".join(repr(x) for x in query.tolist()) + "]"
    distance = f"s.embedding::vector({dims}) <=> %(query)s::vector({dims})"
    with transaction.atomic(), connection.cursor() as cursor:
        # ef_search bounds how many rows the index returns; iterative scans (pgvector >= 0.8) go on past the
        # rows the filters drop (disabled entries, other kinds) in exact distance order.
        ef_search = max(settings.KB_VECTOR_EF_SEARCH, take)
        cursor.execute(f"SET LOCAL hnsw.ef_search = {int(ef_search)}")
        if tuple(int(part) for part in (pgvector_version() or "0").split(".")[:2]) >= (0, 8):
            cursor.execute("SET LOCAL hnsw.iterative_scan = strict_order")
        sql = _NEAREST_SQL.format(distance=distance, model=_literal(model_id), **_TABLES)
        cursor.execute(sql, {"query": literal, "kinds": list(kinds), "take": take})
        rows = cursor.fetchall()
    return _best_per_entry([row[0] for row in rows], [row[1] for row in rows], [row[2] for row in rows], limit)


def reset_caches() -> None:
    """Forget what this process cached: matrices, the extension's presence, which side tables were in sync."""
    matrix_cache.clear()
    with _sync_lock:
        _extension_versions.clear()
        _synced.clear()
