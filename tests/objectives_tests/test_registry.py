"""The one registry class behind LOSSES, MODELS, ENCODERS and DATASETS: one name rule, one
unknown-name message, read-only mappings, and entry points loaded once on the first lookup."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from losstune.objectives.data import DATASETS, DatasetInfo, UnknownDatasetError, register_dataset
from losstune.objectives.encoders import ENCODERS, TextEncoder, get_encoder_class
from losstune.objectives.losses import LOSSES, BaseLoss, get_loss_class, register_loss
from losstune.objectives.models import MODELS, BaseHead, get_model_class, register_model
from losstune.objectives.registry import (
    NAME_RULE,
    SOURCES,
    PluginError,
    Registry,
    is_valid_name,
    unknown_name_message,
)
from tests.conftest import REPO

REGISTRIES = {"loss": LOSSES, "model head": MODELS, "encoder": ENCODERS, "dataset": DATASETS}


def test_every_built_in_name_follows_the_one_rule() -> None:
    for kind, registry in REGISTRIES.items():
        assert len(registry) >= 3, kind
        bad = [n for n in registry if not is_valid_name(n)]
        assert bad == [], kind
    assert "20ng_hierarchical" in DATASETS and is_valid_name("20ng_hierarchical")
    for name in ("", "Focal", "_focal", "my-loss", "focal loss", "é", 3):
        assert not is_valid_name(name), name


@pytest.mark.parametrize("bad", ["Focal", "_private", "my-loss", ""])
def test_bad_names_are_refused_with_the_rule_for_every_kind(bad: str) -> None:
    def cls(base: type, **attrs: object) -> type:
        return type("Part", (base,), {"name": bad, "__doc__": "x", **attrs})

    with pytest.raises(ValueError, match="must declare a snake_case `name`") as loss:
        register_loss(cls(BaseLoss))
    with pytest.raises(ValueError, match="must declare a snake_case `name`") as head:
        register_model(cls(BaseHead))
    with pytest.raises(ValueError, match="snake_case") as data:
        register_dataset(DatasetInfo(name=bad, loader=lambda: None, description="", source=""))
    for exc in (loss, head, data):
        assert NAME_RULE in str(exc.value) and repr(bad) in str(exc.value)
    assert bad not in LOSSES and bad not in MODELS and bad not in DATASETS


def test_wrong_kind_and_taken_names_are_refused() -> None:
    with pytest.raises(TypeError, match="not a subclass of losstune.objectives.losses.BaseLoss"):
        register_loss(int)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a losstune.objectives.data.DatasetInfo"):
        register_dataset("r8")  # type: ignore[arg-type]
    clash = type("Clash", (BaseLoss,), {"name": "ce"})
    with pytest.raises(ValueError, match="'ce' is already registered by losstune"):
        register_loss(clash)
    assert LOSSES["ce"] is not clash
    assert register_loss(LOSSES["ce"]) is LOSSES["ce"]  # the same class again is fine


def test_unknown_names_list_the_valid_ones_and_the_closest() -> None:
    with pytest.raises(KeyError) as loss:
        get_loss_class("focla")
    assert "Unknown loss 'focla'" in str(loss.value) and "Did you mean 'focal'?" in str(loss.value)
    with pytest.raises(KeyError, match="Unknown model head 'lineer'.*Did you mean 'linear'"):
        get_model_class("lineer")
    with pytest.raises(KeyError, match="Unknown encoder 'minlm'.*Did you mean 'minilm'"):
        get_encoder_class("minlm")
    with pytest.raises(UnknownDatasetError, match="Unknown dataset 'r9'.*'r8'"):
        DATASETS.lookup("r9")
    assert DATASETS.get("r9") is None  # the mapping's get: no error
    assert unknown_name_message("x", "zzz", ["a"]) == "Unknown x 'zzz'; expected one of ['a']."


def test_the_old_home_of_the_message_helper_still_works() -> None:
    from losstune.objectives.data.registry import unknown_name_message as old

    assert old is unknown_name_message


def test_registries_read_like_read_only_mappings() -> None:
    assert "ce" in LOSSES and LOSSES["ce"].name == "ce"
    assert dict(LOSSES.items())["focal"] is LOSSES["focal"]
    assert sorted(MODELS) == sorted(MODELS.keys())
    with pytest.raises(TypeError):
        LOSSES["ce"] = LOSSES["focal"]  # type: ignore[index]
    with pytest.raises(TypeError):
        del LOSSES["ce"]  # type: ignore[attr-defined]


def test_build_passes_knobs_and_only_the_context_the_constructor_takes() -> None:
    loss = LOSSES.build("focal", {"gamma": 1.5}, {"num_classes": 3, "unused": 1})
    assert loss.gamma == 1.5
    with pytest.raises(ValueError, match=r"loss 'focal' has no parameter\(s\) \['gama'\]"):
        LOSSES.build("focal", {"gama": 1.5}, {})
    head = MODELS.build("linear", {}, {"in_dim": 4, "num_classes": 2, "token_dim": 9})
    assert isinstance(head, BaseHead)
    with pytest.raises(TypeError, match="does not build"):
        ENCODERS.build("hashing", {}, {})


# ------------------------------------------------------------------ entry points
def _install(site: Path, package: str, group: str, entries: dict[str, str],
             module: str, body: str) -> None:
    """An installed distribution (dist-info with entry points) plus its module, in ``site``."""
    info = site / f"{package.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.2.3\n")
    lines = "\n".join(f"{name} = {value}" for name, value in entries.items())
    (info / "entry_points.txt").write_text(f"[{group}]\n{lines}\n")
    (site / f"{module}.py").write_text(textwrap.dedent(body))


PROBE_BODY = """
    import time
    from losstune.objectives.encoders import HashingEncoder

    IMPORTS = []
    IMPORTS.append(1)
    time.sleep(0.2)  # let the other threads arrive while the group loads

    class ProbeEncoder(HashingEncoder):
        name = "probe_enc"

    class Misnamed(HashingEncoder):
        name = "other"
"""


def _probe_registry(group: str) -> Registry:
    return Registry(kind="encoder", key="encoder", base=TextEncoder,
                    base_path="losstune.objectives.encoders.TextEncoder", group=group)


def test_a_group_loads_once_on_the_first_lookup_from_many_threads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    group = "losstune.test_probe_threads"
    _install(tmp_path, "probe-threads", group, {"probe_enc": "probe_threads_mod:ProbeEncoder"},
             "probe_threads_mod", PROBE_BODY)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = _probe_registry(group)
    assert "probe_enc" not in registry  # nothing is imported before a lookup
    found: list[type] = []
    threads = [threading.Thread(target=lambda: found.append(registry.lookup("probe_enc")))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    module = sys.modules["probe_threads_mod"]
    assert found == [module.ProbeEncoder] * 8
    assert module.IMPORTS == [1]
    source = SOURCES["encoder:probe_enc"]
    assert (source.module, source.package, source.version) == (
        "probe_threads_mod", "probe-threads", "1.2.3")
    assert source.provides == ["encoder:probe_enc"]
    del SOURCES["encoder:probe_enc"]


def test_a_misnamed_entry_point_fails_with_its_name_and_is_retried(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    group = "losstune.test_probe_misnamed"
    _install(tmp_path, "probe-misnamed", group, {"probe_bad": "probe_misnamed_mod:Misnamed"},
             "probe_misnamed_mod", PROBE_BODY)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = _probe_registry(group)
    for _ in range(2):  # not marked as loaded after a failure: the next lookup says it again
        with pytest.raises(PluginError, match="entry point 'probe_bad' .* loads a part named "
                                              "'other'"):
            registry.lookup("hashing")


def test_encoders_load_their_own_entry_point_group_in_a_fresh_process(tmp_path: Path) -> None:
    _install(tmp_path, "probe-encoder", "losstune.encoders",
             {"probe_enc": "probe_encoder_mod:ProbeEncoder"}, "probe_encoder_mod", PROBE_BODY)
    code = ("from losstune.objectives.encoders import ENCODERS, get_encoder_class\n"
            "from losstune.objectives.plugins import sources_for\n"
            "assert 'probe_enc' not in ENCODERS\n"
            "print(get_encoder_class('probe_enc').__module__)\n"
            "print(sources_for(['encoder:probe_enc']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(tmp_path)}, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "probe_encoder_mod"
    assert "'package': 'probe-encoder', 'version': '1.2.3'" in lines[1]
