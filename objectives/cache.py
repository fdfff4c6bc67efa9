"""The on-disk cache of encoder outputs, shared by every trial, worker and study on a machine.

An entry is identified by a key (dataset, split, text digest, encoder, max length, encoder file
hash, ...) and holds named numpy arrays. Entries are written into a temporary folder and renamed
into place, under a file lock, so that two processes starting at once encode only once and a
reader never sees a half-written entry.

Row reuse (:func:`cached_rows`): an entry of row-aligned arrays can also store one digest per
row (``rows.npy``) and be listed in an index of its *family* (the key without the split and
text digest: dataset, encoder, settings). A request whose exact key is not cached is then
assembled from the rows that entries of its family already hold, and only the missing rows are
computed (and stored as an entry of their own). Another holdout or a ``limit`` subset of a
dataset thus never re-encodes a document whose encoding is cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

logger = logging.getLogger(__name__)

CACHE_ENV = "LOSSTUNE_CACHE"


def cache_root() -> Path:
    """``$LOSSTUNE_CACHE``, else the user's cache dir (``~/.cache/losstune`` on Linux)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("losstune"))


def key_digest(key: Mapping[str, Any]) -> str:
    blob = json.dumps(dict(key), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


class CacheStats:
    """Process-wide counters, read by tests and by ``run`` to say whether it encoded anything."""

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        #: rows computed by :func:`cached_rows` (encoded documents); rows served from other
        #: entries of the same family
        self.rows_computed = 0
        self.rows_reused = 0
        self._lock = threading.Lock()

    def record(self, hit: bool) -> None:
        with self._lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1

    def record_rows(self, *, computed: int = 0, reused: int = 0) -> None:
        with self._lock:
            self.rows_computed += computed
            self.rows_reused += reused


STATS = CacheStats()
_memory: dict[str, dict[str, np.ndarray]] = {}
_memory_lock = threading.Lock()


def entry_dir(kind: str, key: Mapping[str, Any], root: Path | None = None) -> Path:
    return (root or cache_root()) / kind / key_digest(key)


def _read_entry(path: Path) -> dict[str, np.ndarray]:
    meta = json.loads((path / "meta.json").read_text())
    return {name: np.load(path / f"{name}.npy", mmap_mode="r") for name in meta["arrays"]}


def cached_arrays(
    kind: str,
    key: Mapping[str, Any],
    compute: Callable[[], Mapping[str, np.ndarray]],
    *,
    root: Path | None = None,
) -> dict[str, np.ndarray]:
    """Return the arrays stored under ``key``, computing and storing them on the first call.

    Arrays come back memory-mapped read-only; they are also memoised in this process.
    """
    path = entry_dir(kind, key, root)
    memo_key = str(path)
    with _memory_lock:
        if memo_key in _memory:
            STATS.record(hit=True)
            return _memory[memo_key]
    if (path / "meta.json").exists():
        arrays = _read_entry(path)
        STATS.record(hit=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            if (path / "meta.json").exists():  # another process finished while we waited
                arrays = _read_entry(path)
                STATS.record(hit=True)
            else:
                STATS.record(hit=False)
                logger.info("cache miss: computing %s %s", kind, dict(key))
                computed = {k: np.ascontiguousarray(v) for k, v in compute().items()}
                tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=path.parent))
                try:
                    for name, array in computed.items():
                        np.save(tmp / f"{name}.npy", array)
                    meta = {"key": dict(key), "arrays": sorted(computed)}
                    (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=str))
                    os.replace(tmp, path)
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
                arrays = _read_entry(path)
    with _memory_lock:
        _memory[memo_key] = arrays
    return arrays


def clear_memory() -> None:
    """Forget the in-process memo (tests use it to check what is read from disk)."""
    with _memory_lock:
        _memory.clear()
        _registered.clear()


# ---------------------------------------------------------------------- row reuse
ROWS_FILE = "rows.npy"
_registered: set[str] = set()  # "<index path>|<entry>" known to be listed, in this process


def row_digests(texts: Sequence[str]) -> np.ndarray:
    """One 128-bit hex digest per text (``S32``): what identifies a row across entries."""
    return np.array([hashlib.sha256(t.encode("utf-8")).hexdigest()[:32].encode()
                     for t in texts], dtype="S32")


def _index_path(kind: str, family: Mapping[str, Any], root: Path | None) -> Path:
    return (root or cache_root()) / "rows-index" / kind / f"{key_digest(family)}.json"


def _read_index(path: Path) -> list[str]:
    try:
        return list(json.loads(path.read_text())["entries"])
    except (OSError, ValueError, KeyError):
        return []


def register_rows(
    kind: str,
    key: Mapping[str, Any],
    family: Mapping[str, Any],
    rows: Callable[[], np.ndarray],
    *,
    root: Path | None = None,
) -> bool:
    """List the existing entry ``key`` in the index of ``family`` (writing its row digests
    first if it has none, e.g. an entry made before row reuse existed). Returns False when
    there is no such entry."""
    path = entry_dir(kind, key, root)
    index = _index_path(kind, family, root)
    marker = f"{index}|{path.name}"
    if marker in _registered:
        return True
    if not (path / "meta.json").exists():
        return False
    try:
        if not (path / ROWS_FILE).exists():
            digests = rows()
            n = len(next(iter(_read_entry(path).values())))
            if len(digests) != n:  # not a row-aligned entry of these texts: leave it alone
                return False
            with FileLock(str(path) + ".lock"):
                if not (path / ROWS_FILE).exists():
                    tmp = path / f".rows.{os.getpid()}.npy"
                    np.save(tmp, digests)
                    os.replace(tmp, path / ROWS_FILE)
        index.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(index) + ".lock"):
            entries = _read_index(index)
            if path.name not in entries:
                entries.append(path.name)
                tmp = index.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps({"family": dict(family), "entries": entries},
                                          default=str))
                os.replace(tmp, index)
    except OSError:  # a read-only cache still serves exact hits; rows just are not shared
        logger.debug("could not index the rows of %s", path, exc_info=True)
        return False
    _registered.add(marker)
    return True


def _find_rows(
    kind: str, family: Mapping[str, Any], wanted: np.ndarray, root: Path | None
) -> dict[bytes, tuple[Path, int]]:
    """Where each wanted row digest is held by an entry of ``family``."""
    index = _index_path(kind, family, root)
    want = set(wanted.tolist())
    found: dict[bytes, tuple[Path, int]] = {}
    for name in _read_index(index):
        path = index.parents[2] / kind / name
        try:
            held = np.load(path / ROWS_FILE)
        except (OSError, ValueError):
            continue  # removed by hand: skip it
        for i, digest in enumerate(held.tolist()):
            if digest in want and digest not in found:
                found[digest] = (path, i)
        if len(found) == len(want):
            break
    return found


def cached_rows(
    kind: str,
    key: Mapping[str, Any],
    family: Mapping[str, Any],
    rows: np.ndarray,
    compute: Callable[[np.ndarray], Mapping[str, np.ndarray]],
    *,
    root: Path | None = None,
) -> dict[str, np.ndarray]:
    """Like :func:`cached_arrays` for arrays with one row per item, reusing rows across entries.

    Args:
        kind: the cache folder (e.g. ``embeddings``).
        key: the exact key of the request (as for :func:`cached_arrays`).
        family: what rows must share to be interchangeable (encoder, settings, dataset).
        rows: one digest per requested row (:func:`row_digests`).
        compute: ``compute(positions)`` returns the arrays of those request positions only.

    The exact key is served as before when cached. Otherwise rows held by entries of the same
    family are gathered and only the missing rows are computed; when nothing is reusable the
    result is stored under the exact key, exactly as :func:`cached_arrays` would.
    """
    path = entry_dir(kind, key, root)
    with _memory_lock:
        if str(path) in _memory:
            STATS.record(hit=True)
            return _memory[str(path)]
    if (path / "meta.json").exists():
        arrays = cached_arrays(kind, key, lambda: compute(np.arange(len(rows))), root=root)
        register_rows(kind, key, family, lambda: rows, root=root)
        return arrays
    found = _find_rows(kind, family, rows, root)
    if not found:  # nothing to reuse: the plain entry under the exact key, as always
        computed: list[int] = []

        def compute_all() -> Mapping[str, np.ndarray]:
            computed.append(len(rows))
            return compute(np.arange(len(rows)))

        arrays = cached_arrays(kind, key, compute_all, root=root)
        STATS.record_rows(computed=sum(computed))
        register_rows(kind, key, family, lambda: rows, root=root)
        return arrays
    missing = np.array([i for i, r in enumerate(rows.tolist()) if r not in found], dtype=np.int64)
    if len(missing):
        # the new rows become an entry of their own (keyed by their digests), then are found
        part = rows[missing]
        part_key = {**family, "rows": hashlib.sha256(part.tobytes()).hexdigest()[:20],
                    "n": len(part)}
        cached_arrays(kind, part_key, lambda: compute(missing), root=root)
        register_rows(kind, part_key, family, lambda: part, root=root)
        STATS.record_rows(computed=len(missing))
        found = _find_rows(kind, family, rows, root)
    else:
        STATS.record(hit=True)
    STATS.record_rows(reused=len(rows) - len(missing))
    arrays = _gather(rows, found)
    with _memory_lock:
        _memory[str(path)] = arrays
    return arrays


def _gather(rows: np.ndarray, found: dict[bytes, tuple[Path, int]]) -> dict[str, np.ndarray]:
    by_entry: dict[Path, tuple[list[int], list[int]]] = {}
    for position, digest in enumerate(rows.tolist()):
        entry, row = found[digest]
        positions, sources = by_entry.setdefault(entry, ([], []))
        positions.append(position)
        sources.append(row)
    out: dict[str, np.ndarray] = {}
    for entry, (positions, sources) in by_entry.items():
        arrays = _read_entry(entry)
        for name, array in arrays.items():
            if name not in out:
                out[name] = np.empty((len(rows), *array.shape[1:]), dtype=array.dtype)
            out[name][positions] = np.asarray(array[np.asarray(sources)])
    return out


def file_hash(paths: list[Path]) -> str:
    """sha256 over the given files' bytes, memoised on disk by (path, size, mtime)."""
    stamp = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    memo = cache_root() / "file_hashes.json"
    stamp_key = hashlib.sha256(json.dumps(stamp).encode()).hexdigest()
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    if stamp_key in known:
        return str(known[stamp_key])
    h = hashlib.sha256()
    for p in paths:
        with p.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                h.update(chunk)
    digest = h.hexdigest()[:16]
    known[stamp_key] = digest
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known))
        os.replace(tmp, memo)
    except OSError:
        pass
    return digest
