"""Reading what is stored: the storage URL of a command, an existing storage opened without
creating it, study names, and a study loaded by name.

Every module of :mod:`losstune.studies` that reads studies imports these from here (never from
:mod:`losstune.studies.api`, which re-exports them for the Python API).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

import losstune.storage as storage_pkg
from losstune.objectives.errors import LosstuneError
from losstune.objectives.registry import did_you_mean

if TYPE_CHECKING:
    from losstune.studies.spec import StudySpec


class StudyNotFoundError(LosstuneError, KeyError):
    """No study of that name in the storage."""

    def __str__(self) -> str:
        return str(self.args[0])


def resolve_url(storage: str | None, spec: StudySpec | None = None) -> str:
    """The storage URL of a command: ``storage`` (the flag), else ``$LOSSTUNE_STORAGE``, else
    the study file's ``storage:``, else ``sqlite:///losstune.db``."""
    return storage_pkg.resolve_storage_url(storage, spec.storage if spec else None)


def open_storage_ro(storage: str | None) -> Any:
    """Open an existing storage (an SQLite file that does not exist is an error, not created)."""
    url = resolve_url(storage)
    path = storage_pkg.sqlite_path(url)
    if path is not None and not path.exists():
        raise storage_pkg.StorageError(
            f"no study storage at {str(path)!r} (from {storage_pkg.mask_url(url)}); run "
            "`losstune run STUDY.yaml` here first, or pass --storage / set LOSSTUNE_STORAGE"
        )
    try:
        return storage_pkg.get_storage(url)
    except Exception as exc:
        if path is None or not is_database_error(exc):
            raise
        folder = path.parent if str(path.parent) else Path(".")
        why = ""
        if not _writable(folder):
            why = (f" (its folder {str(folder)!r} is read-only, and SQLite keeps its journal "
                   "beside the database: copy the file to a writable folder)")
        elif not _writable(path):
            why = " (the file is read-only: copy it, or make it writable)"
        raise storage_pkg.StorageError(
            f"cannot open SQLite storage {storage_pkg.mask_url(url)}: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}{why}") from None


def check_storage_writable(url: str, *, writer: str = "a run") -> None:
    """``writer`` (a run, confirm) writes to the storage: an SQLite file (or its folder,
    where SQLite keeps its journal) that cannot be written is refused before anything is
    created or trained."""
    path = storage_pkg.sqlite_path(url)
    if path is None:
        return
    folder = path.parent if str(path.parent) else Path(".")
    shown = storage_pkg.mask_url(url)
    if path.exists() and not os.access(path, os.W_OK):
        raise storage_pkg.StorageError(
            f"SQLite storage {str(path)!r} ({shown}) is read-only; {writer} writes its "
            "trials there: make it writable or pass another --storage")
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        raise storage_pkg.StorageError(
            f"the folder {str(folder)!r} of SQLite storage {shown} is read-only; SQLite writes "
            "its journal next to the database: make the folder writable or pass another "
            "--storage")


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK | (os.X_OK if path.is_dir() else 0))


def is_database_error(exc: BaseException) -> bool:
    """A database driver's error (SQLite, SQLAlchemy, Optuna's storage wrapper)."""
    import sqlite3

    from sqlalchemy.exc import SQLAlchemyError

    return isinstance(exc, (sqlite3.Error, SQLAlchemyError,
                            optuna.exceptions.StorageInternalError))


def study_names(storage: str | None = None) -> list[str]:
    """Names of the studies in an existing storage, in storage order."""
    return _names(open_storage_ro(storage))


def _names(st: Any) -> list[str]:
    return [s.study_name for s in optuna.get_all_study_summaries(st, include_best_trial=False)]


#: Study attribute of a ``<study>--confirm`` study (:mod:`losstune.studies.confirm`): the name
#: of the study whose best trials it re-trains.
CONFIRMS_ATTR = "confirms"
#: Study attribute of a suite's ``<suite>--runs`` study (:mod:`losstune.studies.suite`): the
#: suite's name.
SUITE_ATTR = "suite"


@dataclass(frozen=True)
class LinkedStudy:
    """A study that losstune writes next to a search study: not a search of its own.

    Attributes:
        kind: ``"confirm"`` (the per-seed runs of ``losstune confirm``) or ``"runs"`` (the
            evaluation runs of ``losstune suite``).
        source: the confirmed study, or the suite.
    """

    kind: str
    source: str

    @property
    def description(self) -> str:
        """One phrase for listings: ``confirmation runs of study 'tiny'``."""
        if self.kind == "confirm":
            return f"confirmation runs of study {self.source!r}"
        return f"evaluation runs of suite {self.source!r}"


def linked_study(user_attrs: Mapping[str, Any]) -> LinkedStudy | None:
    """What a study with these user attributes is, when losstune wrote it as the linked
    study of another (``<study>--confirm``, ``<suite>--runs``); None for a search study."""
    source = user_attrs.get(CONFIRMS_ATTR)
    if isinstance(source, str) and source:
        return LinkedStudy("confirm", source)
    suite = user_attrs.get(SUITE_ATTR)
    if isinstance(suite, str) and suite and "study_file" not in user_attrs:
        return LinkedStudy("runs", suite)
    return None


def search_study_names(storage: str | None = None) -> list[str]:
    """Names of the search studies in an existing storage (linked studies left out)."""
    st = open_storage_ro(storage)
    return [s.study_name for s in optuna.get_all_study_summaries(st, include_best_trial=False)
            if linked_study(s.user_attrs) is None]


def only_study(storage: str | None = None, *, command: str = "show") -> str:
    """The name of the one search study in the storage, for commands given no study name.

    Raises:
        StudyNotFoundError: the storage holds no search study, or several (the message lists
            them).
    """
    names = search_study_names(storage)
    where = storage_pkg.mask_url(resolve_url(storage))
    if len(names) == 1:
        return names[0]
    if not names:
        raise StudyNotFoundError(f"no study in {where}; run `losstune run STUDY.yaml` first")
    raise StudyNotFoundError(
        f"{len(names)} studies in {where}: {', '.join(sorted(names))}; name one, e.g. "
        f"`losstune {command} {sorted(names)[0]}`"
    )


def get_study(name: str, storage: str | None = None) -> optuna.Study:
    """Load a study by name, with an error that lists the studies in the storage."""
    st = open_storage_ro(storage)
    names = _names(st)
    if name not in names:
        hint = did_you_mean(name, names)
        shown = ", ".join(sorted(names)) if names else "none"
        raise StudyNotFoundError(
            f"no study named {name!r} in {storage_pkg.mask_url(resolve_url(storage))}.{hint} "
            f"Studies there: {shown}"
        )
    return optuna.load_study(study_name=name, storage=st)
