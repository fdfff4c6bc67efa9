"""Users' own data (registry name ``files``): CSV, JSONL or Parquet files with a text column and a
label column, configured through ``data.options`` of a study file.

Splits, in order of precedence:

* ``train`` (+ optional ``val`` and ``test``): one file per split. A missing ``val`` is held out
  from ``train`` (``val_fraction``), a missing ``test`` likewise (``test_fraction``).
* ``path`` + ``split_column``: one file whose column says ``train`` / ``val`` / ``test``
  (``validation``, ``valid`` and ``dev`` also mean ``val``). Without ``val`` rows, validation is
  held out from ``train``; ``test`` rows are required.
* ``path`` alone: an automatic stratified split, ``test_fraction`` (default 0.2) to test, then
  ``val_fraction`` (default 0.1) of the rest to validation, with ``split_seed``.

Labels: single-label by default. Multi-label when ``multilabel: true``, when ``label_delimiter``
is set (``"sports|politics"``) or when the values are lists (JSONL/Parquet lists, or a JSON list
in a CSV cell such as ``["sports", "politics"]``); an empty multi-label value means "no label".
Class names are the sorted labels found in all splits unless ``classes`` gives them (then a
label outside that list is an error). Held-out splits are stratified (multi-label: by each
document's rarest label) and every class keeps at least one training document.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from losstune.objectives.data.base import Split
from losstune.objectives.data.registry import DEFAULT_SPLIT_SEED, DatasetError, RawDataset
from losstune.objectives.data.splits import split_off
from losstune.objectives.errors import short_repr, short_text

FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl",
           ".parquet": "parquet", ".pq": "parquet"}
SPLIT_VALUES = {"train": "train", "val": "val", "valid": "val", "validation": "val",
                "dev": "val", "test": "test"}
FILE_OPTIONS = (
    "path", "train", "val", "test", "format", "text_column", "label_column", "multilabel",
    "label_delimiter", "classes", "split_column", "test_fraction", "val_fraction",
    "split_seed", "csv_delimiter", "encoding",
)


class DataFileError(DatasetError):
    """A user data file is missing, malformed, or does not match the options."""


# ---------------------------------------------------------------------- options
def _file_format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in ("csv", "jsonl", "parquet"):
            raise DataFileError("data.options.format must be csv, jsonl or parquet, got "
                                f"{short_repr(fmt)}")
        return fmt
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise DataFileError(
            f"{path}: cannot tell the format from the extension {path.suffix!r}; set "
            f"data.options.format to csv, jsonl or parquet (known extensions: {sorted(FORMATS)})"
        ) from None


def _existing(value: Any, key: str) -> Path:
    if not isinstance(value, (str, Path)) or not str(value):
        raise DataFileError(f"data.options.{key} must be a file path, got {short_repr(value)}")
    path = Path(value).expanduser()
    try:
        found = path.is_file()
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise DataFileError(f"data.options.{key}: cannot use {short_repr(str(value))} as a "
                            f"file path ({reason})") from None
    if not found:
        where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
        raise DataFileError(f"data.options.{key}: no such file {short_repr(str(path))}{where}")
    return path


def _fraction(options: Mapping[str, Any], key: str, default: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise DataFileError(f"data.options.{key} must lie in (0, 1), got {short_repr(value)}")
    return float(value)


def _string(options: Mapping[str, Any], key: str, default: str | None) -> str | None:
    value = options.get(key, default)
    if value is not None and (not isinstance(value, str) or not value):
        raise DataFileError(f"data.options.{key} must be a non-empty string, got "
                            f"{short_repr(value)}")
    return value


def _encoding(options: Mapping[str, Any]) -> str:
    value = _string(options, "encoding", "utf-8")
    assert value is not None
    try:
        info = codecs.lookup(value)
        if not getattr(info, "_is_text_encoding", True):  # base64, zlib: bytes to bytes
            raise LookupError(value)
    except LookupError:
        raise DataFileError(
            f"data.options.encoding: unknown text encoding {short_repr(value)}; use a Python "
            "codec name such as utf-8, utf-8-sig, latin-1, cp1252 or utf-16") from None
    return value


def _csv_delimiter_option(options: Mapping[str, Any]) -> str | None:
    value = _string(options, "csv_delimiter", None)
    if value is not None and (len(value) != 1 or value in ('"', "\n", "\r")):
        raise DataFileError(f"data.options.csv_delimiter must be one character (not a quote or "
                            f"a line break), got {short_repr(value)}")
    return value


def check_file_options(options: Mapping[str, Any]) -> None:
    """Cheap checks at study-file time: option types, files exist, columns exist."""
    _resolve(options)


def _resolve(options: Mapping[str, Any]) -> dict[str, Any]:
    if "path" in options and "train" in options:
        raise DataFileError("data.options: give either `path` (one file) or `train` (one file "
                            "per split), not both")
    if "path" not in options and "train" not in options:
        raise DataFileError("dataset 'files' needs data.options.path (one file) or "
                            "data.options.train (+ val, test: one file per split)")
    if "path" in options:
        for key in ("val", "test"):
            if key in options:
                raise DataFileError(f"data.options.{key} needs data.options.train instead of "
                                    "data.options.path")
    files = {k: _existing(options[k], k) for k in ("path", "train", "val", "test")
             if k in options}
    fmt = _string(options, "format", None)
    multilabel = options.get("multilabel")
    if multilabel is not None and not isinstance(multilabel, bool):
        raise DataFileError("data.options.multilabel must be true or false, got "
                            f"{short_repr(multilabel)}")
    delimiter = _string(options, "label_delimiter", None)
    if delimiter is not None and multilabel is False:
        raise DataFileError("data.options.label_delimiter splits multi-label values, but "
                            "data.options.multilabel is false")
    classes = options.get("classes")
    if classes is not None:
        if (not isinstance(classes, Sequence) or isinstance(classes, str) or not classes
                or not all(isinstance(c, (str, int)) and not isinstance(c, bool)
                           for c in classes)):
            raise DataFileError(f"data.options.classes must be a non-empty list of names, "
                                f"got {short_repr(classes)}")
        names = [str(c) for c in classes]
        if len(set(names)) != len(names):
            raise DataFileError(f"data.options.classes has duplicates: {names}")
    seed = options.get("split_seed", DEFAULT_SPLIT_SEED)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DataFileError(f"data.options.split_seed must be an integer, got {short_repr(seed)}")
    split_column = _string(options, "split_column", None)
    if split_column is not None and "path" not in options:
        raise DataFileError("data.options.split_column needs data.options.path (one file)")
    resolved = {
        "files": files,
        "formats": {k: _file_format(p, fmt) for k, p in files.items()},
        "text_column": _string(options, "text_column", "text"),
        "label_column": _string(options, "label_column", "label"),
        "multilabel": multilabel,
        "label_delimiter": delimiter,
        "classes": None if classes is None else tuple(str(c) for c in classes),
        "split_column": split_column,
        "test_fraction": _fraction(options, "test_fraction", 0.2),
        "val_fraction": _fraction(options, "val_fraction", 0.1),
        "split_seed": seed,
        "csv_delimiter": _csv_delimiter_option(options),
        "encoding": _encoding(options),
    }
    needed = [resolved["text_column"], resolved["label_column"]]
    if split_column:
        needed.append(split_column)
    for key, path in files.items():
        present = _columns(path, resolved["formats"][key], resolved)
        if present is not None:
            _require_columns(path, present, needed)
    return resolved


def _require_columns(path: Path, present: Sequence[str], needed: Sequence[str]) -> None:
    missing = [c for c in needed if c not in present]
    if missing:
        raise DataFileError(f"{path}: no column(s) {missing}; the columns are {list(present)} "
                            "(set data.options.text_column / label_column / split_column)")


# ---------------------------------------------------------------------- readers
#: Row problems listed per file before "... and N more".
MAX_LISTED = 10
#: The csv module's per-field limit (128 KiB by default) is raised to this: a long document in
#: one cell is data, not an error.
CSV_FIELD_LIMIT = 2**31 - 1


class _Problems:
    """Row problems of one file, collected so that one message lists them all: the
    :data:`MAX_LISTED` first rows in file order, then a count."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.listed: list[tuple[int, int, str]] = []  # (row, order of arrival, message)
        self.count = 0

    def add(self, message: str, row: int | str = 0) -> None:
        """Record ``message`` about ``row`` (its number, or its ``"row N"`` label)."""
        self.count += 1
        key = (_row_number(row), self.count, message)
        if len(self.listed) < MAX_LISTED or key < self.listed[-1]:
            bisect.insort(self.listed, key)
            del self.listed[MAX_LISTED:]

    def raise_if_any(self) -> None:
        if not self.count:
            return
        more = (f"; ... and {self.count - len(self.listed)} more"
                if self.count > len(self.listed) else "")
        head = f"{self.path}: " if self.count == 1 else f"{self.path}: {self.count} problems: "
        raise DataFileError(head + "; ".join(m for *_, m in self.listed) + more)


def _row_number(row: int | str) -> int:
    if isinstance(row, int):
        return row
    tail = row.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _csv_delimiter(path: Path, resolved: Mapping[str, Any]) -> str:
    if resolved["csv_delimiter"]:
        return resolved["csv_delimiter"]
    return "\t" if path.suffix.lower() in (".tsv", ".txt") else ","


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name == "utf-8"


def _decode(path: Path, encoding: str) -> str:
    """The whole file as text; a byte the encoding cannot read is reported with its line."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if _is_utf8(encoding) and raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataFileError(
            f"{path}: line {line}: byte {raw[exc.start]:#04x} cannot be read as {encoding} "
            f"({exc.reason}); set data.options.encoding to the file's encoding (e.g. latin-1, "
            "cp1252, utf-16)") from None


def _csv_reader(path: Path, text: str, resolved: Mapping[str, Any]) -> Any:
    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)
    return csv.reader(io.StringIO(text, newline=""), delimiter=_csv_delimiter(path, resolved))


def _csv_error(path: Path, reader: Any, exc: Exception) -> DataFileError:
    return DataFileError(f"{path}: line {reader.line_num}: cannot parse it as CSV ({exc}); "
                         "check data.options.csv_delimiter and the quoting")


def _columns(path: Path, fmt: str, resolved: Mapping[str, Any]) -> list[str] | None:
    """Column names from the header / schema / first record (None when the file itself will
    say what is wrong when it is read: an empty or broken JSONL file)."""
    encoding = "utf-8-sig" if _is_utf8(resolved["encoding"]) else resolved["encoding"]
    try:
        if fmt == "csv":
            with path.open(encoding=encoding, newline="") as handle:
                if csv.field_size_limit() < CSV_FIELD_LIMIT:
                    csv.field_size_limit(CSV_FIELD_LIMIT)
                reader = csv.reader(handle, delimiter=_csv_delimiter(path, resolved))
                try:
                    header = next(reader, None)
                except csv.Error as exc:
                    raise _csv_error(path, reader, exc) from None
            if header is None:
                raise DataFileError(f"{path}: the file is empty (no header row); a CSV file "
                                    "needs a header naming its columns, then one row per "
                                    "document")
            return header
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        with path.open(encoding=encoding) as handle:
            for line in handle:
                if line.strip():
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        return None
                    return list(record) if isinstance(record, dict) else None
        return None
    except DataFileError:
        raise
    except ImportError:
        raise DataFileError(f"{path}: reading Parquet needs pyarrow; install losstune[parquet] "
                            "(`pip install 'losstune[parquet]'`)") from None
    except UnicodeDecodeError:
        _decode(path, resolved["encoding"])  # raises with the line of the bad byte
        raise  # pragma: no cover - a streamed decode failed where a whole one did not
    except (OSError, ValueError) as exc:
        raise DataFileError(f"{path}: cannot read it as {fmt}: "
                            f"{short_text(str(exc), 200)}") from None


def read_table(path: Path, fmt: str, columns: Sequence[str], resolved: Mapping[str, Any],
               problems: _Problems | None = None) -> tuple[dict[str, list[Any]], list[str]]:
    """The wanted columns as lists, plus where each row is, for messages: ``line N`` of a
    JSONL file, ``row N`` of a CSV or Parquet file (data rows counted from 1).

    Rows that cannot be read (a broken JSONL line, a CSV row with too few fields, a record
    without a wanted key) are left out and added to ``problems``; without a collector they
    are reported together in one :class:`DataFileError`.
    """
    own = problems is None
    present = _columns(path, fmt, resolved)
    if present is not None:
        _require_columns(path, present, columns)
    out: dict[str, list[Any]] = {c: [] for c in columns}
    numbers: list[str] = []
    problems = _Problems(path) if problems is None else problems
    if fmt == "csv":
        reader = _csv_reader(path, _decode(path, resolved["encoding"]), resolved)
        try:
            header = next(reader)
            where = [header.index(c) for c in columns]
            for number, row in enumerate(reader, 1):
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) != len(header):
                    problems.add(f"row {number} has {len(row)} field(s), the header "
                                 f"{len(header)}; check data.options.csv_delimiter and quoting",
                                 number)
                    continue
                for c, i in zip(columns, where, strict=True):
                    out[c].append(row[i])
                numbers.append(f"row {number}")
        except csv.Error as exc:
            raise _csv_error(path, reader, exc) from None
    elif fmt == "jsonl":
        text = _decode(path, resolved["encoding"])
        for number, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.add(f"line {number} is not valid JSON ({exc.msg} at column "
                              f"{exc.colno}); each line must be one JSON object", number)
                continue
            if not isinstance(record, dict):
                problems.add(f"line {number} is a JSON {type(record).__name__}, not an object; "
                             f"each line must be one object with keys {list(columns)}", number)
                continue
            missing = [c for c in columns if c not in record]
            if missing:
                problems.add(f"line {number} has no key(s) {missing}; its keys are "
                             f"{short_repr(list(record))}", number)
                continue
            for c in columns:
                out[c].append(record[c])
            numbers.append(f"line {number}")
    else:
        try:
            import pyarrow.parquet as pq

            table = pq.read_table(path, columns=list(columns))
        except (OSError, ValueError) as exc:
            raise DataFileError(f"{path}: cannot read it as parquet: "
                                f"{short_text(str(exc), 200)}") from None
        for c in columns:
            out[c] = table.column(c).to_pylist()
        numbers = [f"row {i}" for i in range(1, table.num_rows + 1)]
    if own:
        problems.raise_if_any()
    return out, numbers


# ---------------------------------------------------------------------- values
def _scalar_label(value: Any) -> str | None:
    """A label as a class name; None when it cannot be one."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


def _parse_labels(value: Any, *, multilabel: bool, delimiter: str | None) -> list[str] | None:
    """The labels of one row; None when the value cannot be parsed."""
    if not multilabel:
        label = _scalar_label(value)
        return None if label is None else [label]
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                return None
        elif delimiter is not None:
            return [p.strip() for p in text.split(delimiter) if p.strip()]
        else:
            return [text] if text else []
    if isinstance(value, (list, tuple)):
        labels = [_scalar_label(v) for v in value]
        return None if any(v is None for v in labels) else list(dict.fromkeys(labels))
    label = _scalar_label(value)
    return None if label is None else [label]


def _is_multilabel(values: Sequence[Any], resolved: Mapping[str, Any]) -> bool:
    if resolved["multilabel"] is not None:
        return bool(resolved["multilabel"])
    if resolved["label_delimiter"] is not None:
        return True
    return any(isinstance(v, (list, tuple)) or (isinstance(v, str) and v.strip().startswith("["))
               for v in values)


def _text_problem(value: Any, column: str) -> str | None:
    """Why a text cell cannot be a document (None when it can)."""
    if isinstance(value, str):
        if value.strip():
            return None
        what = "is empty" if not value else "is empty (only whitespace)"
    elif value is None:
        what = "is missing (null)"
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        what = f"holds the number {short_repr(value)}, not text"
    else:
        what = f"holds a {type(value).__name__} ({short_repr(value)}), not text"
    return f"the text column {column!r} {what}; every row needs a non-empty text"


def _rows(path: Path, fmt: str, resolved: Mapping[str, Any], problems: _Problems
          ) -> tuple[list[str], list[Any], list[str], list[Any] | None]:
    """Texts, raw label values, row numbers and raw split values of one file; rows whose text
    is unusable are reported to ``problems`` (and left out)."""
    cols = [resolved["text_column"], resolved["label_column"]]
    if resolved["split_column"]:
        cols.append(resolved["split_column"])
    table, numbers = read_table(path, fmt, cols, resolved, problems)
    texts, values, kept, splits = [], [], [], []
    raw_splits = table[cols[2]] if resolved["split_column"] else [None] * len(numbers)
    for text, value, number, raw in zip(table[cols[0]], table[cols[1]], numbers, raw_splits,
                                        strict=True):
        problem = _text_problem(text, resolved["text_column"])
        if problem is not None:
            problems.add(f"{number}: {problem}", number)
            continue
        texts.append(text.strip())
        values.append(value)
        kept.append(number)
        splits.append(raw)
    return texts, values, kept, (splits if resolved["split_column"] else None)


def _raise_all(problems: list[_Problems]) -> None:
    """One message for every file with problems."""
    bad = [p for p in problems if p.count]
    if len(bad) == 1:
        bad[0].raise_if_any()
    messages = []
    for p in bad:
        try:
            p.raise_if_any()
        except DataFileError as exc:
            messages.append(str(exc))
    if messages:
        raise DataFileError("; ".join(messages))


def _label_kind(multilabel: bool) -> str:
    if multilabel:
        return ("a list of labels; expected a JSON list of class names, names separated by "
                "data.options.label_delimiter, or an empty value for no label")
    return "a label; expected one class name (non-empty text or an integer)"


def formats_of(path: Path, files: Mapping[str, Path], formats: Mapping[str, str]) -> str:
    """The format of ``path`` (one of the configured files)."""
    return next(formats[k] for k, p in files.items() if p == path)


def _paths(files: Mapping[str, Path]) -> str:
    return ", ".join(str(p) for p in dict.fromkeys(files.values()))


# ---------------------------------------------------------------------- loader
def load_files(**options: Any) -> RawDataset:
    """The ``files`` dataset: see the module docstring for the options."""
    resolved = _resolve(options)
    files, formats = resolved["files"], resolved["formats"]
    problems = {path: _Problems(path) for path in files.values()}
    # (split name or None for "to be split", texts, raw label values, row numbers, path)
    parts: list[tuple[str | None, list[str], list[Any], list[str], Path]] = []
    if "path" in files:
        path = files["path"]
        texts, values, numbers, split_values = _rows(path, formats["path"], resolved,
                                                     problems[path])
        if split_values is None:
            parts.append((None, texts, values, numbers, path))
        else:
            grouped: dict[str, tuple[list[str], list[Any], list[str]]] = {
                s: ([], [], []) for s in ("train", "val", "test")}
            for text, value, number, raw in zip(texts, values, numbers, split_values,
                                                strict=True):
                key = (SPLIT_VALUES.get(str(raw).strip().lower())
                       if isinstance(raw, (str, int)) else None)
                if key is None:
                    problems[path].add(
                        f"{number}: split column {resolved['split_column']!r} has "
                        f"{short_repr(raw)}; expected one of {sorted(SPLIT_VALUES)}", number)
                    continue
                grouped[key][0].append(text)
                grouped[key][1].append(value)
                grouped[key][2].append(number)
            for key in ("train", "val", "test"):
                if grouped[key][0] or key != "val":
                    parts.append((key, *grouped[key], path))
    else:
        for key in ("train", "val", "test"):
            if key in files:
                parts.append((key, *_rows(files[key], formats[key], resolved,
                                          problems[files[key]])[:3], files[key]))

    all_values = [v for part in parts for v in part[2]]
    multilabel = _is_multilabel(all_values, resolved)
    given = resolved["classes"]
    allowed = set(given) if given is not None else None
    parsed: list[list[list[str]]] = []
    for _key, _, values, numbers, path in parts:
        rows = []
        for value, number in zip(values, numbers, strict=True):
            labels = _parse_labels(value, multilabel=multilabel,
                                   delimiter=resolved["label_delimiter"])
            if labels is None:
                problems[path].add(f"{number}: cannot read {short_repr(value)} in label column "
                                   f"{resolved['label_column']!r} as {_label_kind(multilabel)}",
                                   number)
                labels = []
            elif allowed is not None:
                unknown = [x for x in labels if x not in allowed]
                if unknown:
                    problems[path].add(
                        f"{number}: label(s) {short_repr(unknown)} are not in "
                        f"data.options.classes {short_repr(list(given), 200)}", number)
                    labels = [x for x in labels if x in allowed]
            rows.append(labels)
        parsed.append(rows)
    _raise_all(list(problems.values()))
    for key, texts, _, _, path in parts:
        if not texts:
            what = f"the {key} split" if key else "the file"
            detail = "" if key and "path" in files and resolved["split_column"] else (
                " (only a header)" if formats_of(path, files, formats) == "csv" else
                " (it is empty or holds only blank lines)")
            raise DataFileError(f"{path}: {what} has no rows{detail}; give one row per "
                                "document")
    seen = sorted({label for rows in parsed for labels in rows for label in labels})
    class_names = given if given is not None else tuple(seen)
    if not seen:
        raise DataFileError(f"{_paths(files)}: the label column {resolved['label_column']!r} "
                            "holds no labels at all")
    index = {name: i for i, name in enumerate(class_names)}

    def to_split(texts: list[str], rows: list[list[str]]) -> Split:
        if multilabel:
            labels = np.zeros((len(rows), len(class_names)), dtype=np.uint8)
            for i, row in enumerate(rows):
                labels[i, [index[x] for x in row]] = 1
        else:
            labels = np.array([index[row[0]] for row in rows], dtype=np.int64)
        return Split(tuple(texts), labels)

    splits: dict[str, Split] = {}
    for (key, texts, _, _, _), rows in zip(parts, parsed, strict=True):
        splits[key or "all"] = to_split(texts, rows)
    seed = resolved["split_seed"]
    notes = []
    if "all" in splits:
        splits["train"], splits["test"] = split_off(splits.pop("all"),
                                                    resolved["test_fraction"], seed)
        notes.append(f"automatic stratified split: test_fraction {resolved['test_fraction']:g}, "
                     f"then val_fraction {resolved['val_fraction']:g}, seed {seed}")
    if "test" not in splits:
        splits["train"], splits["test"] = split_off(splits["train"],
                                                    resolved["test_fraction"], seed)
        notes.append(f"test held out from train: {resolved['test_fraction']:g}, seed {seed}")
    if "val" not in splits:
        splits["train"], splits["val"] = split_off(splits["train"],
                                                   resolved["val_fraction"], seed + 1)
        notes.append(f"validation held out from train: {resolved['val_fraction']:g}, "
                     f"seed {seed + 1}")
    for key in ("train", "val", "test"):
        if len(splits[key]) == 0:
            raise DataFileError(f"{_paths(files)}: the {key} split has no rows (too few "
                                "documents to split them; give more rows or separate split "
                                "files)")
    return RawDataset(class_names=tuple(class_names), multilabel=multilabel,
                      train=splits["train"], val=splits["val"], test=splits["test"],
                      notes=tuple(notes))
