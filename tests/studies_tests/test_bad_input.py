"""Bad input, tried the way an adversarial user would: every case is one line ``error: ...``
naming what is wrong and what is valid, exit status 2, and nothing written (no storage, no
study, no output file). One test per class of problem."""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from losstune.studies.cli import cli
from tests.conftest import tiny_study


def one_line_error(args: list[str]) -> str:
    """Run the CLI; it must fail with one line ``error: ...`` and exit 2. Returns the line."""
    result = CliRunner().invoke(cli, args, prog_name="losstune")
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"crashed: {result.exception!r}\n{result.output}"
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: "), result.output
    return lines[0]


def write_study(path: Path, study: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(study, sort_keys=False), encoding="utf-8")
    return path


def refused_everywhere(tmp_path: Path, study: dict[str, Any], *expected: str) -> str:
    """``run`` and ``space`` refuse the study with the same line, and the storage is not
    created."""
    path = write_study(tmp_path / "study.yaml", study)
    db = tmp_path / "s.db"
    line = one_line_error(["run", str(path), "--storage", f"sqlite:///{db}", "--no-progress"])
    for text in expected:
        assert text in line, line
    assert not db.exists(), "a refused study must not create the storage"
    assert one_line_error(["space", str(path)]) == line
    return line


# ---------------------------------------------------------------------- knobs
def test_searched_ranges_outside_a_knobs_domain_are_refused_before_the_study(
        tmp_path: Path) -> None:
    study = tiny_study(space={"loss.focal.gamma": {"low": -3, "high": -1},
                              "model.dropout": {"low": 1.1, "high": 1.5}})
    refused_everywhere(
        tmp_path, study,
        "space.loss.focal.gamma: low -3.0 and high -1.0 are outside the domain of loss "
        "'focal' knob 'gamma': `gamma >= 0` must hold",
        "space.model.dropout: low 1.1 and high 1.5 are outside the domain of model head "
        "'linear' knob 'dropout': `0 <= dropout < 1` must hold")


def test_fixed_values_and_choices_of_knobs_are_checked(tmp_path: Path) -> None:
    study = tiny_study(space={"loss.ce.label_smoothing": 7.5,
                              "loss.focal.gamma": {"choices": [0.5, -2.0]},
                              "train.epochs": {"low": 0, "high": 2},
                              "train.batch_size": 0})
    refused_everywhere(
        tmp_path, study,
        "space.loss.ce.label_smoothing: 7.5 is outside the domain of loss 'ce' knob "
        "'label_smoothing': `0 <= label_smoothing < 1` must hold, but got "
        "label_smoothing=7.5",
        "space.loss.focal.gamma: choice -2.0 is outside the domain",
        "space.train.epochs: low 0 is outside its domain",
        "space.train.batch_size: 0 is outside its domain")


def test_model_params_unknown_out_of_domain_or_shadowed_by_the_space(tmp_path: Path) -> None:
    study = tiny_study(model={"head": "mlp", "params": {"activation": "swish",
                                                        "bogus_knob": 1, "dropout": 0.2}})
    line = refused_everywhere(
        tmp_path, study,
        "model.params: model head 'mlp' has no parameter(s) ['bogus_knob']; valid "
        "parameters: activation, dropout, hidden",
        "model.params.activation: 'swish' is outside the domain of model head 'mlp' knob "
        "'activation'",
        "model.params.dropout: the search space also has model.dropout (float [0, 0.5]), "
        "which every trial uses instead of 0.2")
    assert line.count("; ") >= 2


def test_every_problem_of_a_study_file_is_reported_at_once(tmp_path: Path) -> None:
    study = tiny_study(n_trials=0, space={"loss.focal.gamma": {"low": -3, "high": -1},
                                          "loss.focal.gama": 1, "train.lr": 0.0},
                       model={"head": "linear", "params": {"nope": 1}})
    study["trian"] = {"threads": 1}
    line = refused_everywhere(tmp_path, study, "6 problems: ", "n_trials:", "trian:",
                              "space.loss.focal.gama:", "space.loss.focal.gamma:",
                              "space.train.lr: 0.0 is outside its domain", "model.params:")
    assert line.startswith("error: ") and str(tmp_path / "study.yaml") in line


def test_cuda_on_a_machine_without_it(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    path = write_study(tmp_path / "gpu.yaml", tiny_study(train={"threads": 1,
                                                                "device": "cuda"}))
    db = tmp_path / "s.db"
    line = one_line_error(["run", str(path), "--storage", f"sqlite:///{db}"])
    assert "train.device is 'cuda' but this machine has no CUDA device" in line
    assert "train.device: cpu or auto" in line
    assert not db.exists()
    shown = CliRunner().invoke(cli, ["space", str(path)])  # Ray workers may have the GPU
    assert shown.exit_code == 0 and "warning: train.device is 'cuda'" in shown.output


# ---------------------------------------------------------------------- data files
def _csv(path: Path, rows: list[list[Any]], header: tuple[str, ...] = ("text", "label")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _good_rows(n: int = 24) -> list[list[Any]]:
    return [[f"document {i} about {'ab'[i % 2]}", "ab"[i % 2]] for i in range(n)]


def _jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                            for r in records), encoding="utf-8")
    return path


def _records(n: int = 24) -> list[Any]:
    return [{"text": f"document {i}", "label": "ab"[i % 2]} for i in range(n)]


def _case(name: str, tmp: Path) -> tuple[Path, dict[str, Any], list[str]]:
    """A broken data file, extra options, and what the message must say."""
    rows, recs = _good_rows(), _records()
    if name == "empty text":
        rows[4][0] = ""
        return _csv(tmp / "d.csv", rows), {}, ["d.csv: row 5: the text column 'text' is empty",
                                               "every row needs a non-empty text"]
    if name == "blank text":
        rows[2][0] = "   "
        return _csv(tmp / "d.csv", rows), {}, ["row 3: the text column 'text' is empty "
                                               "(only whitespace)"]
    if name == "null text":
        recs[3]["text"] = None
        return _jsonl(tmp / "d.jsonl", recs), {}, ["d.jsonl: line 4: the text column 'text' "
                                                   "is missing (null)"]
    if name == "numeric text":
        recs[1]["text"] = 12345
        return _jsonl(tmp / "d.jsonl", recs), {}, ["line 2: the text column 'text' holds the "
                                                   "number 12345, not text"]
    if name == "empty label":
        rows[6][1] = ""
        return _csv(tmp / "d.csv", rows), {}, ["row 7: cannot read '' in label column 'label' "
                                               "as a label; expected one class name"]
    if name == "null label":
        recs[5]["label"] = None
        return _jsonl(tmp / "d.jsonl", recs), {}, ["line 6: cannot read None in label column",
                                                   "expected one class name"]
    if name == "mapping label":
        recs[0]["label"] = {"a": 1}
        return _jsonl(tmp / "d.jsonl", recs), {}, ["line 1: cannot read {'a': 1} in label "
                                                   "column 'label'"]
    if name == "broken jsonl line":
        recs[7] = '{"text": "x", "label": '
        return _jsonl(tmp / "d.jsonl", recs), {}, ["line 8 is not valid JSON",
                                                   "each line must be one JSON object"]
    if name == "header only":
        return _csv(tmp / "d.csv", []), {}, ["d.csv: the file has no rows (only a header)"]
    if name == "short row":
        rows[9] = ["just text"]
        return _csv(tmp / "d.csv", rows), {}, ["row 10 has 1 field(s), the header 2"]
    if name == "label outside classes":
        rows[3][1] = "c"
        return _csv(tmp / "d.csv", rows), {"classes": ["a", "b"]}, [
            "row 4: label(s) ['c'] are not in data.options.classes ['a', 'b']"]
    if name == "unknown encoding":
        return _csv(tmp / "d.csv", rows), {"encoding": "klingon"}, [
            "data.options.encoding: unknown text encoding 'klingon'", "utf-8"]
    if name == "wrong encoding":
        path = _csv(tmp / "d.csv", rows)
        path.write_bytes(path.read_bytes().replace(b"document 5", b"docum\xe9nt 5"))
        return path, {}, ["d.csv: line 7: byte 0xe9 cannot be read as utf-8",
                          "set data.options.encoding"]
    raise AssertionError(name)


DATA_CASES = ["empty text", "blank text", "null text", "numeric text", "empty label",
              "null label", "mapping label", "broken jsonl line", "header only", "short row",
              "label outside classes", "unknown encoding", "wrong encoding"]


@pytest.mark.parametrize("case", DATA_CASES)
def test_data_file_errors_name_file_row_and_what_is_valid(tmp_path: Path, case: str) -> None:
    path, extra, expected = _case(case, tmp_path)
    options = {"path": str(path), **extra}
    line = refused_everywhere(tmp_path, tiny_study(data={"name": "files", "options": options}),
                              "data", *expected)
    # check-dataset reports the same problem
    args = ["check-dataset", "files", *[a for k, v in options.items()
                                        for a in ("-o", f"{k}={json.dumps(v)}")]]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    for text in expected:
        assert text in result.output.replace("\n      ", " "), result.output
    assert line


def test_all_bad_rows_of_a_file_are_listed_in_one_message(tmp_path: Path) -> None:
    rows = _good_rows(40)
    for i in (1, 5, 9):
        rows[i][0] = ""
    rows[12][1] = ""
    for i in range(20, 35):
        rows[i] = ["only one field"]
    path = _csv(tmp_path / "d.csv", rows)
    line = refused_everywhere(tmp_path, tiny_study(data={"name": "files",
                                                         "options": {"path": str(path)}}),
                              "19 problems: row 2:", "row 6:", "row 10:", "row 13:",
                              "row 26 has 1 field(s)", "and 9 more")
    assert "row 27" not in line  # the first ten rows in file order are listed


def test_a_megabyte_text_cell_is_data_not_an_error(tmp_path: Path) -> None:
    rows = _good_rows()
    rows[0][0] = "long " * 250_000
    path = _csv(tmp_path / "d.csv", rows)
    result = CliRunner().invoke(cli, ["check-dataset", "files", "-o", f"path={path}"])
    assert result.exit_code == 0, result.output


def test_a_dataset_with_one_class_is_refused(tmp_path: Path) -> None:
    path = _csv(tmp_path / "one.csv", [[f"document {i}", "only"] for i in range(20)])
    refused_everywhere(tmp_path, tiny_study(data={"name": "files",
                                                  "options": {"path": str(path)}}),
                       "dataset 'files' has 1 class(es) ['only']; a classifier needs at "
                       "least two classes")
    result = CliRunner().invoke(cli, ["check-dataset", "files", "-o", f"path={path}"])
    assert result.exit_code == 2 and "at least two classes" in result.output
    # two classes in the file, but the training subset holds one
    two = _csv(tmp_path / "two.csv", [[f"document {i}", "a" if i else "b"] for i in range(30)],)
    options = {"path": str(two), "limit": {"train": 1}}
    refused_everywhere(tmp_path, tiny_study(data={"name": "files", "options": options}),
                       "the train split of dataset 'files' has documents of 1 class(es)",
                       "needs documents of at least two classes")


# ---------------------------------------------------------------------- files themselves
@pytest.mark.parametrize(("content", "expected"), [
    (b"name: x\ndescription: caf\xe9\n", "line 2, column 17: byte 0xe9 is not UTF-8 text"),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x03\x00>\x00", "holds binary data"),
    (b"", "it is empty"),
    (b"- a\n- b\n", "it is a YAML list"),
    (b"a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n"
     b"e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n", "YAML aliases"),
])
def test_unreadable_study_files(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "study.yaml"
    path.write_bytes(content)
    db = tmp_path / "s.db"
    for args in (["run", str(path), "--storage", f"sqlite:///{db}"], ["space", str(path)]):
        assert expected in one_line_error(args)
    assert not db.exists()


def test_train_refuses_an_edited_config_naming_each_knob(tmp_path: Path) -> None:
    config = {"data": {"name": "synthetic"}, "encoder": {"name": "hashing"},
              "model": {"head": "linear", "params": {"dropout": 1.5}},
              "loss": {"terms": [{"name": "ce", "params": {"label_smoothing": 7.5}},
                                 {"name": "focal", "weight": 0.5,
                                  "params": {"bogus_knob": 1}}]},
              "train": {"epochs": 1, "threads": 1}}
    path = tmp_path / "best.yaml"
    path.write_text(yaml.safe_dump({"losstune_export": 1, "config": config}))
    out = tmp_path / "weights"
    line = one_line_error(["train", str(path), "-o", str(out)])
    assert "3 problems" in line
    assert ("config.loss.terms[0].params.label_smoothing: 7.5 is refused by loss 'ce': "
            "`0 <= label_smoothing < 1` must hold") in line
    assert "config.loss.terms[1].params: loss 'focal' has no knob(s) ['bogus_knob']" in line
    assert "config.model.params.dropout: 1.5 is refused by model head 'linear'" in line
    assert not out.exists()
    path.write_bytes(b"config: {data: {name: caf\xe9}}\n")
    assert "byte 0xe9 is not UTF-8 text" in one_line_error(["train", str(path)])


# ---------------------------------------------------------------------- environment
@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make ``path`` unwritable, also for root (an immutable flag), and restore it."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", str(path)], capture_output=True, check=False).returncode:
        pytest.skip("running as root without chattr: nothing is read-only for root here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=False)


@pytest.fixture(scope="module")
def finished_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ro")
    path = write_study(folder / "tiny.yaml", tiny_study(n_trials=1))
    result = CliRunner().invoke(cli, ["run", str(path), "--storage",
                                      f"sqlite:///{folder / 'done.db'}", "--no-progress"])
    assert result.exit_code == 0, result.output
    return folder / "done.db"


def _snapshot(folder: Path) -> dict[str, bytes]:
    """The files of ``folder``, but SQLite's shared-memory index and write-ahead log, which a
    reader creates (empty of changes) next to a database in a writable folder."""
    return {p.name: p.read_bytes() for p in folder.iterdir()
            if p.is_file() and not p.name.endswith(("-shm", "-wal"))}


@pytest.mark.parametrize("what", ["file", "folder"])
def test_read_only_sqlite_storage(tmp_path: Path, finished_db: Path, what: str) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    db = folder / "done.db"
    shutil.copy(finished_db, db)
    study = write_study(tmp_path / "more.yaml", tiny_study(n_trials=3))
    url = f"sqlite:///{db}"
    before = _snapshot(folder)
    with read_only(db if what == "file" else folder):
        line = one_line_error(["run", str(study), "--storage", url])
        assert "read-only" in line and str(folder) in line
        assert "read-only" in one_line_error(["confirm", "tiny", "--storage", url,
                                              "--top", "1", "--seeds", "1"])
        for args in (["show", "tiny"], ["export", "tiny", "-o", str(tmp_path / "b.yaml")]):
            result = CliRunner().invoke(cli, [*args, "--storage", url])
            assert result.exit_code in (0, 2), result.output  # reading may work; never a crash
            if result.exit_code == 2:
                assert len(result.output.strip().splitlines()) == 1
    assert _snapshot(folder) == before, "nothing may be written to a read-only storage"


def test_outputs_into_a_read_only_folder(tmp_path: Path, finished_db: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    url = f"sqlite:///{finished_db}"
    config = tmp_path / "best.yaml"
    assert CliRunner().invoke(cli, ["export", "tiny", "-o", str(config),
                                    "--storage", url]).exit_code == 0
    with read_only(folder):
        for args in (["export", "tiny", "-o", str(folder / "x.yaml"), "--storage", url],
                     ["report", "tiny", "-o", str(folder / "report"), "--storage", url],
                     ["compare", "tiny", "--markdown", str(folder / "t.md"), "--storage", url],
                     ["train", str(config), "-o", str(folder / "weights")]):
            line = one_line_error(args)
            assert str(folder) in line and ("writable" in line or "permitted" in line
                                            or "denied" in line), line
    assert list(folder.iterdir()) == []


def test_dashboard_on_a_port_in_use(finished_db: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_line_error(["dashboard", "--storage", f"sqlite:///{finished_db}",
                               "--port", str(port)])
    assert f"port {port} on 127.0.0.1 is already in use" in line and "--port" in line


def test_compare_markdown_into_a_missing_folder(tmp_path: Path, finished_db: Path) -> None:
    target = tmp_path / "no" / "such" / "table.md"
    line = one_line_error(["compare", "tiny", "--storage", f"sqlite:///{finished_db}",
                           "--markdown", str(target)])
    assert "does not exist" in line
    assert not (tmp_path / "no").exists()


# ---------------------------------------------------------------------- click's own errors
@pytest.mark.parametrize(("args", "expected"), [
    (["run"], "Missing argument 'STUDY_FILE'; see `losstune run --help`"),
    (["run", "x.yaml", "--n-trials", "many"], "Invalid value for '--n-trials'"),
    (["runn"], "No such command 'runn'. Did you mean 'run'?; see `losstune --help`"),
    (["show", "x", "--bogus"], "No such option '--bogus'"),
    (["data", "inf"], "see `losstune data --help`"),
    (["dashboard", "--port", "70000"], "Invalid value for '--port'"),
])
def test_usage_errors_are_one_line(args: list[str], expected: str) -> None:
    assert expected in one_line_error(args)
