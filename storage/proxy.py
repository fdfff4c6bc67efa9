"""A gRPC storage proxy for studies with many workers on many machines.

``losstune storage-proxy --storage postgresql://... --port 13000`` serves one database to any
number of workers, which use ``--storage grpc://HOST:13000`` and need no database access (nor a
database driver) themselves. The proxy holds a fixed pool of database connections however many
workers it serves.

The server runs two gRPC services on one port:

* Optuna's storage service (``optuna.storages.run_grpc_proxy_server``'s servicer) on a cached
  losstune RDB storage, so plain ``optuna.storages.GrpcStorageProxy`` clients work too;
* ``losstune.Coordination``: what losstune needs beyond Optuna's API, as JSON messages:
  ``Hold`` (a study's budget or create lock: the proxy takes the same database lock that direct
  workers take, and releases it when the client says so, or when its connection drops),
  ``WriteTrial`` (a trial's buffered reports and attributes in one transaction), ``Heartbeat``,
  ``StaleTrials`` and ``HeartbeatTrials`` (Optuna's heartbeat and stale-trial check, computed
  by the proxy with the client's grace period) and ``Info``.

:class:`ProxyStorage` is the client: Optuna's ``GrpcStorageProxy`` plus heartbeats, buffered
reports and batched attributes through that service.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from optuna.storages import GrpcStorageProxy
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState

from losstune.storage.base import (
    StorageError,
    StorageSettings,
    _require_grpc,
    backend_of,
    mask_url,
    normalise_url,
    parse_grpc_url,
    quiet_experimental,
)
from losstune.storage.locks import study_lock as database_study_lock
from losstune.storage.rdb import ReportBuffer, close_shared, open_rdb

logger = logging.getLogger(__name__)

SERVICE = "losstune.Coordination"
DEFAULT_PORT = 13000
#: gRPC server threads: each worker waiting for a study lock occupies one while it waits.
DEFAULT_THREADS = 128
#: Database connections of the proxy process (its storage pool, shared by the locks it holds).
DEFAULT_POOL_SIZE = 8
#: gRPC keepalive: a worker machine that vanishes releases its lock within about 30 s.
_KEEPALIVE = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _loads(data: bytes) -> Any:
    return json.loads(data.decode())


# ---------------------------------------------------------------------- server
class Coordination:
    """The ``losstune.Coordination`` service of a proxy (see the module docstring)."""

    def __init__(self, url: str, rdb: Any, *, hold_slots: int) -> None:
        import sqlalchemy

        self.url = url
        self.rdb = rdb
        # locks held for clients get connections of their own (one per study whose lock is
        # held right now), so that lock holders never wait for the storage pool
        self.lock_engine = None
        if backend_of(url) != "sqlite":
            args: dict[str, Any] = {}
            if backend_of(url) == "postgresql":
                args = {"application_name": f"losstune:{os.getpid()}"}
            self.lock_engine = sqlalchemy.create_engine(
                url, pool_size=1, max_overflow=-1, pool_pre_ping=True, connect_args=args)
        self._slots = threading.BoundedSemaphore(hold_slots)
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._mutex = threading.Lock()

    def handler(self) -> Any:
        import grpc

        def unary(fn: Callable[[Any, Any], Any]) -> Any:
            return grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=_loads, response_serializer=_dumps)

        return grpc.method_handlers_generic_handler(SERVICE, {
            "Info": unary(self.info),
            "WriteTrial": unary(self.write_trial),
            "Heartbeat": unary(self.heartbeat),
            "StaleTrials": unary(self.stale_trials),
            "HeartbeatTrials": unary(self.heartbeat_trials),
            "Hold": grpc.stream_stream_rpc_method_handler(
                self.hold, request_deserializer=_loads, response_serializer=_dumps),
        })

    def info(self, request: Any, context: Any) -> dict[str, Any]:
        return {"losstune": True, "storage": mask_url(self.url), "pid": os.getpid()}

    def write_trial(self, request: dict[str, Any], context: Any) -> dict[str, Any]:
        import grpc
        import optuna

        reports = {int(k): float(v) for k, v in request.get("reports", {}).items()}
        try:
            self.rdb._write_trial(int(request["trial_id"]), reports, request.get("attrs", {}))
        except KeyError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except optuna.exceptions.UpdateFinishedTrialError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return {}

    def heartbeat(self, request: dict[str, Any], context: Any) -> dict[str, Any]:
        self.rdb.record_heartbeat(int(request["trial_id"]))
        return {}

    def stale_trials(self, request: dict[str, Any], context: Any) -> dict[str, Any]:
        view = self.rdb.view(heartbeat_interval=int(request["heartbeat_interval"]),
                             grace_period=int(request["grace_period"]),
                             heartbeat_stale_trial_callback=None)
        return {"trial_ids": view._get_stale_trial_ids(int(request["study_id"]))}

    def heartbeat_trials(self, request: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"trial_ids": sorted(self.rdb.heartbeat_trial_ids(int(request["study_id"])))}

    def hold(self, requests: Iterator[Any], context: Any) -> Iterator[dict[str, Any]]:
        """Take a study lock for the client and hold it until the client releases it (sends
        anything, ends its request stream, or disappears)."""
        try:
            first = next(requests)
        except Exception:  # noqa: BLE001 - the client went away before asking
            return
        if not self._slots.acquire(blocking=False):
            yield {"state": "busy"}  # every thread but a reserve waits already: retry later
            return
        try:
            key = (str(first["study"]), str(first.get("purpose", "budget")))
            with self._mutex:
                local = self._locks.setdefault(key, threading.Lock())
            while not local.acquire(timeout=0.25):
                if not context.is_active():
                    return
            try:
                with database_study_lock(self.url, key[0], key[1], engine=self.lock_engine):
                    if not context.is_active():
                        return
                    yield {"state": "held"}
                    with contextlib.suppress(Exception):  # released, ended or cancelled
                        for _ in requests:
                            break
            finally:
                local.release()
        finally:
            self._slots.release()


def make_server(url: str, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                threads: int = DEFAULT_THREADS, pool_size: int = DEFAULT_POOL_SIZE) -> Any:
    """A started proxy server for the database at ``url``; returns ``(server, port)`` (port 0
    binds a free port)."""
    _require_grpc()
    import grpc
    import optuna
    from optuna.storages._grpc.auto_generated import api_pb2_grpc
    from optuna.storages._grpc.servicer import OptunaStorageProxyService

    url = normalise_url(url)
    if backend_of(url) in ("grpc", "memory"):
        raise StorageError(
            f"the storage proxy serves a database; got {mask_url(url)!r}: use "
            "sqlite:///FILE.db, postgresql://... or mysql://..."
        )
    if threads < 8:
        raise StorageError(f"`threads >= 8` must hold, but got {threads}")
    # clients buffer their reports: the proxy writes what it gets at once
    settings = StorageSettings(report_interval=0, pool_size=pool_size)
    rdb = open_rdb(url, settings)
    reserve = max(4, threads // 8)
    server = grpc.server(ThreadPoolExecutor(max_workers=threads,
                                            thread_name_prefix="losstune-proxy"),
                         options=_KEEPALIVE)
    api_pb2_grpc.add_StorageServiceServicer_to_server(
        OptunaStorageProxyService(optuna.storages._CachedStorage(rdb)), server)
    server.add_generic_rpc_handlers(
        (Coordination(url, rdb, hold_slots=threads - reserve).handler(),))
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise StorageError(f"cannot listen on {host}:{port} (in use?)")
    server.start()
    return server, bound


def serve(url: str, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          threads: int = DEFAULT_THREADS, pool_size: int = DEFAULT_POOL_SIZE,
          ready: Callable[[int], None] | None = None) -> None:
    """Serve the proxy until Ctrl-C or SIGTERM (blocks)."""
    import signal

    server, bound = make_server(url, host=host, port=port, threads=threads,
                                pool_size=pool_size)
    stopped = threading.Event()

    def on_term(signum: int, frame: Any) -> None:
        stopped.set()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        if ready is not None:
            ready(bound)
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop(grace=2).wait()
        close_shared(url)


# ---------------------------------------------------------------------- client
class _Calls:
    """Stubs of the coordination service on one channel."""

    def __init__(self, channel: Any) -> None:
        def unary(name: str) -> Any:
            return channel.unary_unary(f"/{SERVICE}/{name}", request_serializer=_dumps,
                                       response_deserializer=_loads)

        self.info = unary("Info")
        self.write_trial = unary("WriteTrial")
        self.heartbeat = unary("Heartbeat")
        self.stale_trials = unary("StaleTrials")
        self.heartbeat_trials = unary("HeartbeatTrials")
        self.hold = channel.stream_stream(f"/{SERVICE}/Hold", request_serializer=_dumps,
                                          response_deserializer=_loads)


class ProxyStorage(ReportBuffer, GrpcStorageProxy, BaseHeartbeat):
    """The storage of ``grpc://HOST:PORT`` URLs: a client of ``losstune storage-proxy``.

    Optuna's ``GrpcStorageProxy`` (with its cache of finished trials) plus heartbeats (so
    ``study.optimize`` heartbeats and dead workers' trials are failed and retried as with a
    direct database), buffered per-epoch reports and one request for many attributes.
    """

    def __init__(self, url: str, *, settings: Any, heartbeat_stale_trial_callback: Any,
                 connect_timeout: float = 5.0) -> None:
        import grpc

        host, port = parse_grpc_url(url)
        self.url = url
        self.settings = settings
        self.heartbeat_interval = settings.heartbeat_interval
        self.grace_period = settings.grace_period
        self.heartbeat_stale_trial_callback = heartbeat_stale_trial_callback
        base = _clients.get((os.getpid(), url))
        if base is not None:  # share the process's channel, caches and report buffer
            for key in ("_host", "_port", "_channel", "_stub", "_cache", "_calls", "_pending",
                        "_last_flush", "_pending_lock"):
                setattr(self, key, getattr(base, key))
            self.report_interval = settings.report_interval
            return
        super().__init__(host=host, port=port)
        self._init_reports(settings.report_interval)
        self._calls = _Calls(self._channel)
        try:
            self.wait_server_ready(timeout=connect_timeout)
            self._calls.info({}, timeout=connect_timeout)
        except ConnectionError:
            self.close()
            raise StorageError(
                f"no storage proxy answers at {url} within {connect_timeout:g} s; start one "
                "with `losstune storage-proxy --storage DATABASE_URL --port PORT`"
            ) from None
        except grpc.RpcError as exc:
            self.close()
            raise StorageError(
                f"the server at {url} is not a losstune storage proxy ({exc.code().name}); "
                "start one with `losstune storage-proxy` (losstune needs its lock service)"
            ) from None
        _clients[(os.getpid(), url)] = self

    def _setup(self) -> None:
        import grpc
        from optuna.storages._grpc.auto_generated import api_pb2_grpc
        from optuna.storages._grpc.client import GrpcClientCache

        self._channel = grpc.insecure_channel(
            f"{self._host}:{self._port}",
            options=[("grpc.max_receive_message_length", -1), *_KEEPALIVE])
        self._stub = api_pb2_grpc.StorageServiceStub(self._channel)
        self._cache = GrpcClientCache(self._stub)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open_proxy, (self.url, self.settings))

    def _call(self, fn: Any, request: dict[str, Any]) -> Any:
        import grpc
        import optuna

        try:
            return fn(request)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise KeyError(exc.details()) from None
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise optuna.exceptions.UpdateFinishedTrialError(exc.details()) from None
            raise

    # --- writes
    def _write_trial(self, trial_id: int, reports: Mapping[int, float],
                     attrs: Mapping[str, Any]) -> None:
        if reports or attrs:
            self._call(self._calls.write_trial, {
                "trial_id": trial_id,
                "reports": {str(k): float(v) for k, v in reports.items()},
                "attrs": dict(attrs)})

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Any = None) -> bool:
        if state != TrialState.RUNNING:
            self._finish_reports(trial_id)
        return super().set_trial_state_values(trial_id, state, values)

    # --- reads
    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._with_pending(super().get_trial(trial_id))

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Any = None) -> list[FrozenTrial]:
        return [self._with_pending(t)
                for t in super().get_all_trials(study_id, deepcopy=deepcopy, states=states)]

    # --- heartbeats
    def record_heartbeat(self, trial_id: int) -> None:
        self._call(self._calls.heartbeat, {"trial_id": trial_id})

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        reply = self._call(self._calls.stale_trials, {
            "study_id": study_id, "heartbeat_interval": self.heartbeat_interval,
            "grace_period": self.grace_period or 2 * self.heartbeat_interval})
        return list(reply["trial_ids"])

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Any:
        return self.heartbeat_stale_trial_callback

    def heartbeat_trial_ids(self, study_id: int) -> set[int]:
        return set(self._call(self._calls.heartbeat_trials, {"study_id": study_id})["trial_ids"])


_clients: dict[tuple[int, str], ProxyStorage] = {}


def _client(url: str) -> ProxyStorage:
    client = _clients.get((os.getpid(), url))
    if client is None:
        open_proxy(url, StorageSettings())
        client = _clients[(os.getpid(), url)]
    return client


@contextlib.contextmanager
def remote_lock(url: str, study_name: str, purpose: str) -> Iterator[None]:
    """Hold a study lock through the proxy at ``url`` (the proxy takes the database lock)."""
    calls = _client(url)._calls
    delay = 0.02
    while True:
        release = threading.Event()

        def requests(release: threading.Event = release) -> Iterator[dict[str, Any]]:
            yield {"study": study_name, "purpose": purpose}
            release.wait()

        responses = calls.hold(requests())
        try:
            state = next(responses)["state"]
        except BaseException:
            release.set()
            responses.cancel()
            raise
        if state == "held":
            break
        release.set()  # busy: every proxy thread but a reserve is waiting; back off
        for _ in responses:
            pass
        time.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, 0.5)
    try:
        yield
    finally:
        release.set()
        with contextlib.suppress(Exception):
            for _ in responses:  # until the proxy has released it
                pass


def open_proxy(url: str, settings: StorageSettings) -> ProxyStorage:
    """A client of the proxy at ``grpc://HOST:PORT`` with ``settings``' heartbeat and retry
    callback (what :func:`losstune.storage.get_storage` gives for such URLs)."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    with quiet_experimental():
        callback = RetryHeartbeatStaleTrialCallback(max_retry=settings.max_retry)
        return ProxyStorage(url, settings=settings, heartbeat_stale_trial_callback=callback)


def close_channel(url: str) -> None:
    client = _clients.pop((os.getpid(), url), None)
    if client is not None:
        client.close()


__all__ = [
    "DEFAULT_POOL_SIZE",
    "DEFAULT_PORT",
    "DEFAULT_THREADS",
    "ProxyStorage",
    "make_server",
    "parse_grpc_url",
    "remote_lock",
    "serve",
]
