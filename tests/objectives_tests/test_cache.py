"""The on-disk encoder cache: keys, hits and misses, atomic writes, concurrent first use."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np
import pytest

from losstune.objectives import cache
from losstune.objectives.config import EncoderConfig
from losstune.objectives.data import load_dataset
from losstune.objectives.features import encoder_outputs


def test_second_call_reads_from_disk_without_recomputing(tmp_path: Path) -> None:
    calls = []

    def compute() -> dict[str, np.ndarray]:
        calls.append(1)
        return {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}

    key = {"a": 1}
    first = cache.cached_arrays("t", key, compute, root=tmp_path)
    cache.clear_memory()
    second = cache.cached_arrays("t", key, compute, root=tmp_path)
    assert calls == [1]
    np.testing.assert_array_equal(first["x"], second["x"])
    cache.cached_arrays("t", {"a": 2}, compute, root=tmp_path)
    assert calls == [1, 1]


def test_failed_compute_leaves_no_entry(tmp_path: Path) -> None:
    def boom() -> dict[str, np.ndarray]:
        raise RuntimeError("encoder crashed")

    with pytest.raises(RuntimeError):
        cache.cached_arrays("t", {"k": 1}, boom, root=tmp_path)
    assert not cache.entry_dir("t", {"k": 1}, tmp_path).exists()
    assert not list((tmp_path / "t").glob(".tmp-*"))


def _worker(root: str, marker_dir: str) -> None:
    def compute() -> dict[str, np.ndarray]:
        Path(marker_dir, f"computed-{os.getpid()}").write_text("1")
        time.sleep(1.0)  # a slow encoder: the other process must wait, not encode again
        return {"x": np.ones((3, 2), dtype=np.float32)}

    out = cache.cached_arrays("t", {"shared": True}, compute, root=Path(root))
    assert float(np.asarray(out["x"]).sum()) == 6.0


def test_two_processes_starting_at_once_encode_once(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(str(tmp_path / "c"), str(markers)))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert len(list(markers.iterdir())) == 1


def test_feature_key_includes_texts_and_encoder_identity() -> None:
    dataset = load_dataset("synthetic")
    cache.clear_memory()
    a = encoder_outputs(dataset, "val", EncoderConfig(name="hashing", max_length=61))
    before = cache.STATS.misses
    b = encoder_outputs(dataset, "val", EncoderConfig(name="hashing", max_length=31))
    assert cache.STATS.misses == before + 1, "max_length must be part of the key"
    assert a["embeddings"].shape == b["embeddings"].shape
    cache.clear_memory()
    hits = cache.STATS.hits
    encoder_outputs(dataset, "val", EncoderConfig(name="hashing", max_length=61))
    assert cache.STATS.hits == hits + 1
    entries = list((cache.cache_root() / "embeddings").glob("*/meta.json"))
    keys = [json.loads(p.read_text())["key"] for p in entries]
    ours = [k for k in keys if k.get("dataset") == "synthetic" and k.get("split") == "val"
            and k.get("max_length") == 61]
    assert ours, "the split's entry is keyed by dataset, split and max_length"
    assert {"dataset", "split", "texts", "encoder", "max_length"} <= set(ours[0])
