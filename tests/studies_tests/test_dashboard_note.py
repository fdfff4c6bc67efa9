"""Study notes are written in optuna-dashboard's format without importing optuna-dashboard."""

from __future__ import annotations

import subprocess
import sys

import optuna
from optuna_dashboard import get_note

from losstune.studies.runner import save_dashboard_note
from tests.studies_tests.ray_helpers import REPO, subprocess_env


def test_notes_read_back_with_optuna_dashboard_long_then_shorter() -> None:
    study = optuna.create_study()
    long = "# title\n" + "x" * 5000 + "\nend"  # three chunks
    save_dashboard_note(study, long, "sqlite:///x.db")
    assert get_note(study) == long
    save_dashboard_note(study, "short note", "sqlite:///x.db")
    assert get_note(study) == "short note"


def test_password_scrubbed_from_the_note() -> None:
    study = optuna.create_study()
    url = "postgresql://user:s3cret@host/db"
    save_dashboard_note(study, f"storage {url}", url)
    assert "s3cret" not in get_note(study)


def test_saving_a_note_imports_no_optuna_dashboard() -> None:
    code = ("import sys, optuna\n"
            "from losstune.studies.runner import save_dashboard_note\n"
            "study = optuna.create_study()\n"
            "save_dashboard_note(study, 'hello', 'sqlite:///x.db')\n"
            "attrs = study._storage.get_study_system_attrs(study._study_id)\n"
            "assert attrs['dashboard:note_str:0'] == 'hello'\n"
            "print('optuna_dashboard' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=subprocess_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
