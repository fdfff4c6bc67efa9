"""One error family: every user-facing error class derives from LosstuneError, and the CLI turns
any of them into one line and exit status 2."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import click
import pytest
from click.testing import CliRunner

from losstune.objectives.errors import LosstuneError

#: Exceptions that are control flow inside losstune, never shown to a user.
INTERNAL = {"TrialPrunedSignal", "SuiteInterrupted"}  # the latter: Ctrl-C, exit 130


def _project_modules() -> list[str]:
    names = []
    for package in ("objectives", "search_spaces", "storage", "studies"):
        pkg = importlib.import_module(f"losstune.{package}")
        names.append(pkg.__name__)
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
    return names


def _error_classes() -> list[type[BaseException]]:
    found = []
    for name in _project_modules():
        if name.endswith("._tune_core"):
            continue  # imports Ray at the top; its errors are LauncherError (checked elsewhere)
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == name:
                found.append(obj)
    return found


def test_every_user_facing_error_derives_from_losstune_error() -> None:
    classes = _error_classes()
    assert len(classes) >= 15, [c.__name__ for c in classes]
    outside = [f"{c.__module__}.{c.__qualname__}" for c in classes
               if not issubclass(c, LosstuneError) and c.__name__ not in INTERNAL
               and not issubclass(c, click.ClickException)]
    assert outside == [], "derive these from LosstuneError (or list them as internal)"


@pytest.mark.parametrize("error", sorted(
    (c for c in _error_classes() if issubclass(c, LosstuneError)), key=lambda c: c.__name__))
def test_cli_reports_every_losstune_error_as_one_line_exit_2(error: type[Exception]) -> None:
    from losstune.studies.cli import handle_errors

    @click.command()
    @handle_errors
    def fails() -> None:
        raise error.__new__(error, "the message")  # type: ignore[call-overload]

    result = CliRunner().invoke(fails, [])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == ["error: the message"]
