"""Reuters-21578 (Lewis, Distribution 1.0) from its SGML files, ModApte split, multi-label topics.

For users who have the corpus (it is not in any package reachable here): ``data.options.path``
is the folder holding ``reut2-000.sgm`` ... ``reut2-021.sgm`` (``pattern`` changes the glob).

ModApte ("Modified Apte") split, as in the corpus README:

* train: ``LEWISSPLIT="TRAIN"`` and ``TOPICS="YES"`` (9,603 documents in the full corpus);
* test: ``LEWISSPLIT="TEST"`` and ``TOPICS="YES"`` (3,299);
* everything else (``NOT-USED``, ``TOPICS="NO"`` / ``"BYPASS"``) is unused.

Documents whose ``<TOPICS>`` list is empty are dropped (the usual practice; 7,775 train and
3,019 test documents keep at least one topic). Labels are the topics (multi-label), class names
sorted. ``modapte90: true`` keeps only topics with at least one training and one test document
(the standard 90 classes on the full corpus) and drops documents left with no topic (7,769 /
3,019). The text is the title, a newline, then the body (``TYPE="BRIEF"`` documents have only a
title; ``TYPE="UNPROC"`` ones are taken as they are); SGML entities are decoded and the
``&#2;`` / ``&#3;`` control marks removed. There is no validation split: it is held out from
train (``val_fraction``, stratified by each document's rarest topic, fixed seed).
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from losstune.objectives.data.base import Split
from losstune.objectives.data.registry import DatasetError, RawDataset

_DOC = re.compile(r"<REUTERS([^>]*)>(.*?)</REUTERS>", re.S)
_ATTR = re.compile(r'([A-Z]+)="([^"]*)"')
_TOPICS = re.compile(r"<TOPICS>(.*?)</TOPICS>", re.S)
_D = re.compile(r"<D>(.*?)</D>", re.S)
_TEXT = re.compile(r"<TEXT([^>]*)>(.*?)</TEXT>", re.S)
_TITLE = re.compile(r"<TITLE>(.*?)</TITLE>", re.S)
_BODY = re.compile(r"<BODY>(.*?)</BODY>", re.S)
_TAG = re.compile(r"<[^>]+>")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class ReutersDoc:
    newid: int
    lewissplit: str
    topics_attr: str
    topics: tuple[str, ...]
    text: str


def _clean(text: str) -> str:
    text = _CONTROL.sub(" ", html.unescape(text))
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def parse_sgml(text: str) -> list[ReutersDoc]:
    """Every ``<REUTERS>`` document of one SGML file."""
    docs = []
    for match in _DOC.finditer(text):
        attrs = dict(_ATTR.findall(match.group(1)))
        inner = match.group(2)
        topics_block = _TOPICS.search(inner)
        topics = tuple(dict.fromkeys(
            _clean(t) for t in _D.findall(topics_block.group(1)))) if topics_block else ()
        body = ""
        text_match = _TEXT.search(inner)
        if text_match:
            content = text_match.group(2)
            if 'TYPE="UNPROC"' in text_match.group(1):
                body = _clean(_TAG.sub(" ", content))
            else:
                title = _TITLE.search(content)
                main = _BODY.search(content)
                pieces = [_clean(m.group(1)) for m in (title, main) if m]
                body = "\n".join(p for p in pieces if p)
        docs.append(ReutersDoc(
            newid=int(attrs.get("NEWID", "-1")),
            lewissplit=attrs.get("LEWISSPLIT", ""),
            topics_attr=attrs.get("TOPICS", ""),
            topics=topics,
            text=body,
        ))
    return docs


def _folder(options: Mapping[str, Any]) -> tuple[Path, list[Path]]:
    path = options.get("path")
    if not isinstance(path, (str, Path)) or not str(path):
        raise DatasetError("dataset 'reuters21578' needs data.options.path: the folder with "
                           "the corpus's reut2-*.sgm files")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"data.options.path: no such folder {str(folder)!r}")
    pattern = options.get("pattern", "reut2-*.sgm")
    if not isinstance(pattern, str) or not pattern:
        raise DatasetError(f"data.options.pattern must be a glob pattern, got {pattern!r}")
    files = sorted(folder.glob(pattern))
    if not files:
        raise DatasetError(f"{folder}: no files match {pattern!r} (expected the corpus's "
                           "reut2-000.sgm ... reut2-021.sgm)")
    flag = options.get("modapte90", False)
    if not isinstance(flag, bool):
        raise DatasetError(f"data.options.modapte90 must be true or false, got {flag!r}")
    return folder, files


def check_reuters_options(options: Mapping[str, Any]) -> None:
    _folder(options)


def modapte_docs(files: list[Path]) -> dict[str, list[ReutersDoc]]:
    """ModApte train and test documents with at least one topic (file order)."""
    out: dict[str, list[ReutersDoc]] = {"train": [], "test": []}
    for path in files:
        text = path.read_bytes().decode("latin-1")  # the corpus is not valid UTF-8 throughout
        for doc in parse_sgml(text):
            if doc.topics_attr != "YES" or not doc.topics:
                continue
            if doc.lewissplit == "TRAIN":
                out["train"].append(doc)
            elif doc.lewissplit == "TEST":
                out["test"].append(doc)
    return out


def load_reuters21578(path: str, pattern: str = "reut2-*.sgm",
                      modapte90: bool = False) -> RawDataset:
    folder, files = _folder({"path": path, "pattern": pattern, "modapte90": modapte90})
    docs = modapte_docs(files)
    if not docs["train"] or not docs["test"]:
        raise DatasetError(f"{folder}: found {len(docs['train'])} ModApte training and "
                           f"{len(docs['test'])} test documents with topics; is this "
                           "Reuters-21578?")
    train_counts = Counter(t for d in docs["train"] for t in d.topics)
    test_counts = Counter(t for d in docs["test"] for t in d.topics)
    topics = set(train_counts) | set(test_counts)
    if modapte90:
        topics = {t for t in topics if train_counts[t] > 0 and test_counts[t] > 0}
    class_names = tuple(sorted(topics))
    index = {name: i for i, name in enumerate(class_names)}
    dropped = {}
    splits = {}
    for key, part in docs.items():
        kept = [d for d in part if any(t in index for t in d.topics)]
        dropped[key] = len(part) - len(kept)
        labels = np.zeros((len(kept), len(class_names)), dtype=np.uint8)
        for i, d in enumerate(kept):
            labels[i, [index[t] for t in d.topics if t in index]] = 1
        splits[key] = Split(tuple(d.text for d in kept), labels)
    notes = [f"ModApte: {len(docs['train'])} train / {len(docs['test'])} test documents with "
             f"at least one topic, from {len(files)} file(s)"]
    if modapte90:
        notes.append(f"modapte90: {len(class_names)} topics with >=1 train and >=1 test "
                     f"document; dropped {dropped['train']} train / {dropped['test']} test "
                     "documents left with no topic")
    return RawDataset(class_names=class_names, multilabel=True, train=splits["train"],
                      test=splits["test"], notes=tuple(notes))
