"""``grpc://HOST:PORT`` storage URLs and ``losstune storage-proxy``'s own errors: one line,
exit code 2, no database touched."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

import losstune.storage as storage_pkg
from losstune.studies.cli import cli
from tests.conftest import require

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(autouse=True)
def _grpc() -> None:
    require(importlib.util.find_spec("grpc") is not None, "grpcio (pip install -e '.[grpc]')")


def _error(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_grpc_urls_are_checked_masked_and_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    assert storage_pkg.normalise_url("grpc://proxy.example:13000") == "grpc://proxy.example:13000"
    assert storage_pkg.backend_of("grpc://proxy.example:13000") == "grpc"
    assert storage_pkg.mask_url("grpc://proxy.example:13000") == "grpc://proxy.example:13000"
    monkeypatch.setenv("LOSSTUNE_STORAGE", "grpc://proxy.example:13000")
    assert storage_pkg.resolve_storage_url(None) == "grpc://proxy.example:13000"
    for bad in ("grpc://proxy.example", "grpc://:13000", "grpc://h:99999", "grpc://h:1/db"):
        with pytest.raises(storage_pkg.StorageError, match="grpc://HOST:PORT"):
            storage_pkg.normalise_url(bad)


def test_commands_on_an_absent_proxy_fail_with_one_line(tmp_path: Path) -> None:
    line = _error("studies", "--storage", "grpc://127.0.0.1:1")
    assert "no storage proxy answers at grpc://127.0.0.1:1" in line
    assert "losstune storage-proxy" in line
    assert "not a proxy URL" in _error("studies", "--storage", "grpc://nowhere")


def test_storage_proxy_refuses_to_proxy_a_proxy_or_memory() -> None:
    assert "serves a database" in _error("storage-proxy", "--storage", "grpc://h:1")
    assert "serves a database" in _error("storage-proxy", "--storage", "memory")


def test_an_optuna_proxy_without_the_lock_service_is_refused(sqlite_url: str) -> None:
    from optuna.storages._grpc.server import make_server

    server = make_server(storage_pkg.get_storage(sqlite_url), "127.0.0.1", 0)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        line = _error("studies", "--storage", f"grpc://127.0.0.1:{port}")
        assert "is not a losstune storage proxy" in line
    finally:
        server.stop(0)


def test_a_proxy_serves_an_sqlite_file_to_the_cli(sqlite_url: str) -> None:
    from losstune.storage.proxy import make_server

    server, port = make_server(sqlite_url, port=0)
    url = f"grpc://127.0.0.1:{port}"
    try:
        study = optuna.create_study(study_name="via_proxy", storage=storage_pkg.get_storage(url))
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        result = CliRunner().invoke(cli, ["studies", "--storage", url])
        assert result.exit_code == 0 and "via_proxy" in result.output, result.output
        direct = optuna.load_study(study_name="via_proxy",
                                   storage=storage_pkg.get_storage(sqlite_url))
        assert len(direct.trials) == 2
    finally:
        server.stop(0)
        storage_pkg.close_storage(url)
