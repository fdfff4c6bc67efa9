"""Passwords stay out of everything losstune prints and stores, whatever characters they hold:
percent-encoded ones, '@', ':', '/', '#', '?', spaces, unicode and regex metacharacters.

Property style: many generated passwords through mask_url / url_password / scrub_text, then a
few of the nastiest through what ``run``, ``show`` and ``export`` print and store (on the real
PostgreSQL server, whose trust authentication accepts any password)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
import yaml
from click.testing import CliRunner

from losstune.storage import mask_url, normalise_url, url_password
from losstune.studies.cli import cli
from losstune.studies.secrets import MIN_BLIND_LENGTH, scrub_text
from tests.conftest import tiny_study

ALPHABET = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
            "@:/#? %+&=.*[](){}^$|\\!~'\"üßΩ密")


def passwords(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = ["p@ss", "a:b@c/d#e?f g", "%41%40", ".*", "@", "::", "ü密 Ω", "(?=x)|\\1"]
    while len(out) < n:
        out.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 24))))
    return out


def forms(pw: str) -> dict[str, str]:
    """The password as a user may write it in a URL: raw, or percent-encoded."""
    return {"raw": pw, "encoded": quote(pw, safe="")}


@pytest.mark.parametrize("scheme", ["postgresql", "mysql+pymysql"])
def test_mask_url_and_url_password_for_any_password(scheme: str) -> None:
    host = "db.example.org:5432/studies"
    for pw in passwords(400):
        for kind, written in forms(pw).items():
            url = f"{scheme}://user:{written}@{host}"
            assert mask_url(url) == f"{scheme}://user:***@{host}", (kind, pw)
            assert url_password(url) == unquote(written), (kind, pw)
            # the driver gets the same password: SQLAlchemy parses the normalised URL
            from sqlalchemy.engine import make_url

            if kind == "encoded" or "%" not in pw:
                assert make_url(normalise_url(url)).password == pw, (kind, pw)
            query = f"{scheme}://user@{host}?sslmode=require&password={quote(pw, safe='')}"
            assert mask_url(query) == f"{scheme}://user@{host}?sslmode=require&password=***"


def test_scrub_text_for_any_password() -> None:
    host = "db.example.org:5432/studies"
    templates = [
        "storage: {url}\nname: x\n",
        "storage: '{url}'\n",
        "(psycopg.OperationalError) connection to {url} failed\nnext line",
        "see {url}",
    ]
    for pw in passwords(300, seed=1):
        for written in forms(pw).values():
            url = f"postgresql://user:{written}@{host}"
            for template in templates:
                expected = template.format(url=f"postgresql://user:***@{host}")
                text = template.format(url=url)
                assert scrub_text(text, url) == expected, (pw, template)
                assert scrub_text(text) == expected, ("unknown URL", pw, template)
            if len(pw) >= MIN_BLIND_LENGTH:
                leaked = f"driver said: bad password [{pw}] for user"
                assert pw not in scrub_text(leaked, url), pw


NASTY = ["Zq@1:/#? ü*+(x", "p%40ss w0rd/?#:", "[.*]+@(?P<x>)$\\1 密码", "colon:at@slash/"]


def _everything(url: str, name: str) -> str:
    """All a study stores: study and trial attributes, as JSON."""
    import optuna

    from losstune.storage import get_storage

    storage = get_storage(url)
    study = optuna.load_study(study_name=name, storage=storage)
    system = storage.get_study_system_attrs(study._study_id)
    trials = [[t.user_attrs, t.system_attrs, t.params] for t in study.trials]
    return json.dumps([study.user_attrs, system, trials], ensure_ascii=False)


def _assert_hidden(pw: str, *texts: str) -> None:
    for text in texts:
        for leaked in {pw, quote(pw, safe=""), pw.replace("@", "%40")}:
            assert leaked not in text, f"password {pw!r} leaked as {leaked!r}"


def test_run_show_export_never_print_or_store_the_password(tmp_path: Path) -> None:
    """SQLite storage; the study file mentions a PostgreSQL URL with a password in its
    description and its storage key (overridden by --storage)."""
    for i, pw in enumerate(NASTY[2:]):  # the first two go through PostgreSQL below
        url = f"postgresql://user:{pw}@db.example.org/studies"
        name = f"mask{i}"
        study = tiny_study(name=name, n_trials=1, description=f"copy of {url} (old server)",
                           storage=url, space={"train.epochs": 1})
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(study, allow_unicode=True), encoding="utf-8")
        db = f"sqlite:///{tmp_path / 'mask.db'}"
        runner = CliRunner()
        ran = runner.invoke(cli, ["run", str(path), "--storage", db, "--no-progress"])
        assert ran.exit_code == 0, ran.output
        shown = runner.invoke(cli, ["show", name, "--storage", db])
        out = tmp_path / f"{name}-best.yaml"
        exported = runner.invoke(cli, ["export", name, "-o", str(out), "--storage", db])
        assert exported.exit_code == 0, exported.output
        _assert_hidden(pw, ran.output, shown.output, exported.output,
                       out.read_text(encoding="utf-8"), _everything(db, name))


def test_postgres_url_with_any_password_is_masked_end_to_end(tmp_path: Path) -> None:
    from tests.storage_tests.servers import delete_study, require_postgres, unique_name

    base = require_postgres()
    head, rest = base.split("://", 1)
    user, where = rest.split("@", 1)
    for pw in NASTY[:2]:
        url = f"{head}://{user}:{pw}@{where}"
        name = unique_name("mask")
        study = tiny_study(name=name, n_trials=1, description=f"lives at {url}",
                           space={"train.epochs": 1})
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(study, allow_unicode=True), encoding="utf-8")
        runner = CliRunner()
        try:
            ran = runner.invoke(cli, ["run", str(path), "--storage", url, "--no-progress"])
            assert ran.exit_code == 0, ran.output
            shown = runner.invoke(cli, ["show", name, "--storage", url])
            listed = runner.invoke(cli, ["studies", "--storage", url])
            out = tmp_path / f"{name}.yaml.out"
            exported = runner.invoke(cli, ["export", name, "-o", str(out), "--storage", url])
            assert exported.exit_code == 0, exported.output
            assert "***" in ran.output
            _assert_hidden(pw, ran.output, shown.output, listed.output, exported.output,
                           out.read_text(encoding="utf-8"), _everything(base, name))
        finally:
            delete_study(name, base)
