"""No study file or data input makes losstune's own processing grow faster than linearly with
its size. Each test times one step on a small and on a 16 times larger input in the same run
and bounds the ratio generously (linear: about 16; quadratic: about 256), so a busy machine
slows both sides alike instead of failing the test. Megabyte inputs are also read whole where
the point is what happens to them (a short message, a short dashboard note)."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import tiny_study

SMALL = 4 * 1024
LARGE = 16 * SMALL  # big enough to show a quadratic step, small enough to fail fast then
MEGABYTE = 1024 * 1024
#: Largest accepted time ratio LARGE / SMALL (linear is 16, quadratic 256).
MAX_RATIO = 64
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def per_call(fn: Callable[[], Any], *, min_seconds: float = 0.05, rounds: int = 3) -> float:
    """Seconds per call of ``fn``: repeated until ``min_seconds`` pass, best of ``rounds``."""
    best = float("inf")
    for _ in range(rounds):
        calls, start = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        best = min(best, elapsed / calls)
    return best


def assert_linear(make: Callable[[int], Any], step: Callable[[Any], Any], what: str) -> None:
    small, large = make(SMALL), make(LARGE)
    t_small = per_call(lambda: step(small))
    t_large = per_call(lambda: step(large), rounds=2)
    ratio = t_large / t_small
    assert ratio < MAX_RATIO, (f"{what}: 16x the input took {ratio:.0f}x the time "
                               f"({t_small * 1e3:.2f} ms -> {t_large * 1e3:.1f} ms)")


# ---------------------------------------------------------------------- password masking
SHAPES: dict[str, Callable[[int], str]] = {
    "one long word": lambda n: "a" * n,
    "many URL schemes": lambda n: "ab://" * (n // 5),
    "URL starts without '@'": lambda n: "x://u:" * (n // 6),
    "a long line of colons": lambda n: "s://" + ":" * n + "@h",
    "blank lines": lambda n: " \n" * (n // 2),
    "password keys": lambda n: "password:\n" * (n // 10),
    "query passwords": lambda n: "?password=" * (n // 10),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_scrub_text_is_linear(shape: str) -> None:
    from losstune.studies.secrets import scrub_text

    url = "postgresql://me:long-secret-pw@db/x"
    assert_linear(SHAPES[shape], lambda text: scrub_text(text, url), f"scrub_text ({shape})")


def test_mask_url_is_linear() -> None:
    from losstune.storage import mask_url, url_password

    def step(url: str) -> None:
        mask_url(url)
        url_password(url)

    assert_linear(lambda n: f"postgresql://me:{'p@:/' * (n // 4)}@db/x?password={'q' * n}",
                  step, "mask_url")


# ---------------------------------------------------------------------- study files
def _study_text(**fields: Any) -> Callable[[int], str]:
    def make(n: int) -> str:
        study = tiny_study(**{k: v(n) for k, v in fields.items()})
        return yaml.dump(study, Dumper=_DUMPER, sort_keys=False)
    return make


def _validate(text: str) -> Any:
    from losstune.studies.spec import load_study_text, parse_study

    return parse_study(load_study_text(text), source="study.yaml")


def test_a_huge_description_is_read_in_linear_time() -> None:
    assert_linear(_study_text(description=lambda n: "word " * (n // 5)), _validate,
                  "study file with a long description")


def test_a_huge_enqueue_list_is_checked_in_linear_time() -> None:
    make = _study_text(n_trials=lambda n: 10**9,
                       enqueue=lambda n: [{"train.lr": 0.01 + i * 1e-9, "loss.name": "ce"}
                                          for i in range(n // 40)])
    assert_linear(make, _validate, "study file with a long enqueue list")


def _refused(text: str) -> str:
    from losstune.studies.spec import StudyFileError

    try:
        _validate(text)
    except StudyFileError as exc:
        return str(exc)
    raise AssertionError("the study file was accepted")


@pytest.mark.parametrize(("what", "make"), [
    ("a huge unknown key", lambda n: {**tiny_study(), "x" * n: 1}),
    ("a huge bad value", lambda n: tiny_study(space={"train.lr": "x" * n})),
    ("huge bad enqueue values", lambda n: tiny_study(enqueue=[{"train.lr": -1.0}] * (n // 20))),
    ("a huge dataset name", lambda n: tiny_study(data={"name": "d" * n})),
])
def test_errors_about_huge_values_are_short_and_linear(what: str, make: Any) -> None:
    def text(n: int) -> str:
        return yaml.dump(make(n), Dumper=_DUMPER, sort_keys=False)

    assert len(_refused(text(MEGABYTE))) < 5000, f"{what}: the message echoes the input"
    assert_linear(text, _refused, what)


def test_yaml_aliases_that_expand_exponentially_are_refused_quickly() -> None:
    from losstune.studies.spec import StudyFileError, load_study_text

    def bomb(levels: int) -> str:
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for i in range(1, levels):
            lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
        return "\n".join(lines) + "\n"

    for levels in (6, 12):  # 10**12 values from under 1 KB
        with pytest.raises(StudyFileError, match="YAML aliases"):
            load_study_text(bomb(levels))


def test_created_study_keeps_the_dashboard_note_short(tmp_path: Path) -> None:
    """A megabyte description is stored whole once, not as hundreds of note pieces."""
    import optuna

    from losstune.studies.api import study_from_dict
    from losstune.studies.runner import NOTE_DESCRIPTION_CHARS, create_or_load

    spec, text = study_from_dict(tiny_study(description="word " * (MEGABYTE // 5)))
    url = f"sqlite:///{tmp_path / 'big.db'}"
    study, created = create_or_load(spec, text, url)
    assert created and len(study.user_attrs["description"]) == len(spec.description)
    notes = [v for k, v in optuna.load_study(study_name=spec.name, storage=url)
             ._storage.get_study_system_attrs(study._study_id).items() if "note" in k]
    assert sum(len(str(v)) for v in notes) < 2 * NOTE_DESCRIPTION_CHARS + 4096


# ---------------------------------------------------------------------- data files
def _csv_with_cell(folder: Path) -> Callable[[int], str]:
    def make(n: int) -> str:
        path = folder / f"cell_{n}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            for i in range(30):
                writer.writerow(["word " * (n // 5) if i == 0 else f"doc {i}", "ab"[i % 2]])
        return str(path)
    return make


def test_a_megabyte_text_cell_loads_in_linear_time(tmp_path: Path) -> None:
    from losstune.objectives.data.files import load_files

    assert_linear(_csv_with_cell(tmp_path), lambda path: load_files(path=path),
                  "files dataset with one long text cell")


def test_a_megabyte_bad_cell_gives_a_short_message(tmp_path: Path) -> None:
    from losstune.objectives.data.files import DataFileError, load_files

    path = tmp_path / "bad.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows([[f"doc {i}", "x" * MEGABYTE if i == 3 else "ab"[i % 2]]
                          for i in range(20)])
    with pytest.raises(DataFileError) as info:
        load_files(path=str(path), classes=["a", "b"])
    assert "row 4: label(s)" in str(info.value) and len(str(info.value)) < 1000
