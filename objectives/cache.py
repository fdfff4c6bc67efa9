"""The on-disk cache of encoder outputs, shared by every trial, worker and study on a machine.

An entry is identified by a key (dataset, split, text digest, encoder, max length, encoder file
hash, ...) and holds named numpy arrays. Entries are written into a temporary folder and renamed
into place, under a file lock, so that two processes starting at once encode only once and a
reader never sees a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
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
        self._lock = threading.Lock()

    def record(self, hit: bool) -> None:
        with self._lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1


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
