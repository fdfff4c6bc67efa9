"""Ray mechanics of the Ray launchers: connecting to a cluster, checking resources, the stop
signal and the worker tasks of ``losstune run --launcher ray``.

Each worker is a Ray task that runs :func:`losstune.studies.runner.run_worker` (Optuna's
``optimize`` loop, one trial at a time, under the shared budget lock) against the study's RDB
storage, so pruning, heartbeats, retries of stale trials and optuna-dashboard work as in a local
run. The study file travels to the workers as a dict (``StudySpec.model_dump``) and is
validated again there, which also imports the study's ``plugins:``.

Ray is imported inside the functions only: the launchers import this module on the CLI's path.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from dataclasses import dataclass, field
from typing import Any

import losstune.storage as storage_pkg
from losstune.studies.launchers.base import (
    LauncherError,
    LaunchRequest,
    ThreadPlan,
    WorkerResult,
    plan_threads,
)
from losstune.studies.runner import StopFlag, run_worker
from losstune.studies.secrets import scrub_text
from losstune.studies.spec import StudySpec, parse_study

logger = logging.getLogger(__name__)


@dataclass
class RayCluster:
    """The Ray instance the launcher uses."""

    started: bool  # this process started a local instance (and shuts it down afterwards)
    address: str  # "local", "existing" (already connected) or the joined address
    resources: dict[str, float] = field(default_factory=dict)
    nodes: list[dict[str, float]] = field(default_factory=list)

    def describe(self) -> str:
        cpus = self.resources.get("CPU", 0)
        gpus = self.resources.get("GPU", 0)
        where = {"local": "started a local Ray instance",
                 "existing": "using the Ray instance this process is connected to"}.get(
                     self.address, f"joined the Ray cluster at {self.address}")
        return (f"Ray: {where}: {len(self.nodes)} node(s), {cpus:g} CPU, {gpus:g} GPU")


def connect(spec: StudySpec, address: str | None) -> RayCluster:
    """Start a local Ray instance, or join ``address`` (flag, else ``ray.address``).

    Without an address Ray is started with ``address="local"``: neither ``$RAY_ADDRESS`` nor
    the cluster file an earlier ``ray start`` left behind can capture a local run. A process
    already connected to Ray (a notebook, a test) keeps its cluster.
    """
    import ray

    if ray.is_initialized():
        return _describe_cluster(RayCluster(started=False, address="existing"))
    kwargs: dict[str, Any] = dict(spec.ray.init)
    target = address or spec.ray.address or kwargs.pop("address", None)
    kwargs.pop("address", None)
    if target and target != "local":
        kwargs["address"] = target
    else:
        target = "local"
        kwargs["address"] = "local"
        kwargs.setdefault("include_dashboard", False)
    kwargs.setdefault("logging_level", logging.WARNING)
    if target != "local":
        # A local instance inherits this process's environment (the CLI sets OMP_WAIT_POLICY);
        # the workers of a joined cluster get it through the job's runtime environment.
        runtime_env = dict(kwargs.get("runtime_env") or {})
        env_vars = dict(runtime_env.get("env_vars") or {})
        env_vars.setdefault("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
        runtime_env["env_vars"] = env_vars
        kwargs["runtime_env"] = runtime_env
    logger.info("Ray: %s", "starting a local instance" if target == "local"
                else f"joining the cluster at {target}")
    try:
        ray.init(**kwargs)
    except Exception as exc:  # noqa: BLE001 - ConnectionError, ValueError, RuntimeError...
        what = ("start a local Ray instance" if target == "local"
                else f"join the Ray cluster at {target}")
        hint = ""
        if target != "local" and not os.environ.get("RAY_AUTH_MODE"):
            hint = ("; if the cluster uses token authentication (what `ray start` does by "
                    "default), set RAY_AUTH_MODE=token (the token comes from ~/.ray/auth_token "
                    "or $RAY_AUTH_TOKEN)")
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise LauncherError(f"cannot {what}: {type(exc).__name__}: {first}{hint}") from None
    return _describe_cluster(RayCluster(started=True, address=target))


def disconnect(cluster: RayCluster) -> None:
    """Shut down the Ray instance ``cluster`` describes, when this process started it."""
    if not cluster.started:
        return
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _describe_cluster(cluster: RayCluster) -> RayCluster:
    import ray

    cluster.resources = {k: float(v) for k, v in ray.cluster_resources().items()}
    cluster.nodes = [{k: float(v) for k, v in n.get("Resources", {}).items()}
                     for n in ray.nodes() if n.get("Alive")]
    return cluster


@dataclass
class WorkerPlan:
    num_cpus: float
    num_gpus: float
    device: str | None  # train.device for the workers (None: the study file's)
    slots: int  # workers that fit on the cluster at once
    notes: list[str] = field(default_factory=list)
    threads: ThreadPlan | None = None  # torch threads per worker
def cluster_cores(cluster: RayCluster) -> tuple[float, float]:
    """CPUs of the largest node and of the whole cluster; a local instance counts at most the
    cores this process may use (Ray may count more than its affinity mask allows)."""
    from losstune.objectives.config import usable_cores

    largest = max((n.get("CPU", 0.0) for n in cluster.nodes), default=0.0)
    total = cluster.resources.get("CPU", largest)
    if cluster.address in ("local", "existing") and len(cluster.nodes) <= 1:
        largest, total = min(largest, usable_cores()), min(total, usable_cores())
    return largest, total


def plan_resources(spec: StudySpec, cluster: RayCluster, workers: int,
                   threads: int | None = None) -> WorkerPlan:
    """Check the study's per-worker resources against the cluster's nodes, and choose the
    torch threads and CPUs of each worker.

    A study asking for GPUs on a cluster without any fails with a clear message, or trains on
    CPU when ``ray.cpu_fallback`` is set. Requests no single node can satisfy fail too (Ray
    would otherwise wait for them forever).

    Threads per worker: ``threads`` (``--threads``), else ``train.threads``, else the CPUs the
    worker reserves when the study file sets ``ray.num_cpus``, else a node's cores shared by
    the workers placed on it. Without ``ray.num_cpus`` each worker reserves as many CPUs as it
    runs threads (capped at the largest node), so Ray never packs more threads on a node than
    it has cores.
    """
    num_gpus = float(spec.ray.num_gpus)
    device: str | None = None
    notes: list[str] = []
    total_gpus = cluster.resources.get("GPU", 0.0)
    largest_gpu = max((n.get("GPU", 0.0) for n in cluster.nodes), default=0.0)
    largest_cpu = max((n.get("CPU", 0.0) for n in cluster.nodes), default=0.0)
    node_cores, total_cores = cluster_cores(cluster)
    explicit_cpus = "num_cpus" in spec.ray.model_fields_set
    if explicit_cpus:
        num_cpus = float(spec.ray.num_cpus)
        default = max(1, int(num_cpus)) if num_cpus >= 1 else 1
    else:
        per_node = max(1, math.ceil(workers / max(1, len(cluster.nodes))))
        default = max(1, int(node_cores) // per_node)
    thread_plan = plan_threads(spec, threads, concurrent=workers, cores=int(total_cores) or 1,
                               default=default)
    if not explicit_cpus:
        num_cpus = float(max(1, min(thread_plan.threads, int(largest_cpu) or 1)))
    explicit_device = "device" in spec.train.model_fields_set
    if num_gpus > 0 and largest_gpu < num_gpus:
        if total_gpus == 0 and spec.ray.cpu_fallback:
            notes.append(f"note: the study asks for ray.num_gpus={num_gpus:g} per worker but "
                         "the Ray cluster has no GPU; ray.cpu_fallback is set, so the workers "
                         "train on CPU")
            num_gpus, device = 0.0, "cpu"
        elif total_gpus == 0:
            raise LauncherError(
                f"the study asks for ray.num_gpus={num_gpus:g} GPU per worker, but the Ray "
                f"cluster has no GPU ({_resources_text(cluster)}). Run it where GPUs are, join "
                "a GPU cluster with --address, set `ray.num_gpus: 0`, or set "
                "`ray.cpu_fallback: true` to train on CPU."
            )
        else:
            raise LauncherError(
                f"the study asks for ray.num_gpus={num_gpus:g} GPU per worker, but no node of "
                f"the Ray cluster has that many (largest: {largest_gpu:g} GPU); lower "
                "ray.num_gpus (fractions such as 0.5 share a GPU)"
            )
    elif num_gpus > 0:
        if not explicit_device:
            device = "cuda"
        elif spec.train.device == "cpu":
            notes.append("note: train.device is 'cpu': the workers reserve GPUs but train on "
                         "CPU; set train.device: cuda (or leave it out) to use them")
    elif spec.train.device.startswith("cuda") and not spec.ray.cpu_fallback:
        raise LauncherError(
            f"train.device is {spec.train.device!r} but ray.num_gpus is 0: Ray hides the GPUs "
            "from workers that reserve none; set ray.num_gpus (e.g. 1, or 0.5 to share a GPU)"
        )
    elif spec.train.device.startswith("cuda"):
        device = "cpu"
    if num_cpus > largest_cpu:
        raise LauncherError(
            f"the study asks for ray.num_cpus={num_cpus:g} CPU per worker, but no node of the "
            f"Ray cluster has that many (largest: {largest_cpu:g} CPU); lower ray.num_cpus"
        )
    slots = 0
    for node in cluster.nodes:
        fits = [math.inf]
        if num_cpus > 0:
            fits.append(math.floor(node.get("CPU", 0.0) / num_cpus + 1e-9))
        if num_gpus > 0:
            fits.append(math.floor(node.get("GPU", 0.0) / num_gpus + 1e-9))
        slots += workers if math.isinf(min(fits)) else int(min(fits))
    if slots < workers:
        notes.append(f"note: only {slots} of {workers} workers fit on the Ray cluster at once "
                     f"({num_cpus:g} CPU, {num_gpus:g} GPU each; {_resources_text(cluster)}); "
                     "the others wait for a free slot")
    thread_plan.concurrent = min(slots, workers)
    warning = thread_plan.warning()
    if warning:
        notes.append(warning)
    logger.info("Ray workers: %d (%d at once), %d torch thread(s) each (%s), resources per "
                "worker: num_cpus=%g%s, num_gpus=%g", workers, min(slots, workers),
                thread_plan.threads, thread_plan.source, num_cpus,
                "" if explicit_cpus else " (from the threads)", num_gpus)
    return WorkerPlan(num_cpus=num_cpus, num_gpus=num_gpus, device=device,
                      slots=min(slots, workers), notes=notes, threads=thread_plan)


def _resources_text(cluster: RayCluster) -> str:
    return ", ".join(f"{k}={cluster.resources.get(k, 0):g}" for k in ("CPU", "GPU"))


def shareable_url(url: str) -> str:
    """``url`` with a relative SQLite path made absolute: Ray workers may run in another folder
    (Ray Tune changes into each trial's folder) or on another node."""
    path = storage_pkg.sqlite_path(url)
    if path is None or path.is_absolute():
        return url
    scheme, rest = url.split("://", 1)
    query = "?" + rest.split("?", 1)[1] if "?" in rest else ""
    return f"{scheme}:///{path.resolve()}{query}"


def spec_for_workers(spec: StudySpec, device: str | None,
                     threads: int | None = None) -> dict[str, Any]:
    """The study as a plain dict for Ray workers (rebuilt there with :func:`parse_study`),
    with the planned device and torch threads per trial."""
    data = spec.model_dump(mode="json", exclude_unset=True)
    if device is not None:
        data.setdefault("train", {})["device"] = device
    if threads is not None:
        data.setdefault("train", {})["threads"] = threads
    return data


def rebuild_spec(data: dict[str, Any]) -> StudySpec:
    """The study in a Ray worker process (which also sets Optuna's logging there: the driver's
    CLI sets it in the driver only)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return parse_study(data, source="study file (in a Ray worker)")


class StopSignal:
    """A tiny Ray actor: the driver sets it on Ctrl-C, workers read it between trials."""

    def __init__(self) -> None:
        self._reason = ""

    def set(self, reason: str) -> None:
        self._reason = self._reason or reason

    def reason(self) -> str:
        return self._reason


class RemoteStop(StopFlag):
    """A worker's :class:`StopFlag` that also asks the driver's :class:`StopSignal` actor."""

    def __init__(self, handle: Any) -> None:
        super().__init__()
        self._handle = handle

    def __bool__(self) -> bool:
        if self.event.is_set():
            return True
        if self._handle is None:
            return False
        import ray

        try:
            reason = ray.get(self._handle.reason.remote(), timeout=30)
        except Exception:  # noqa: BLE001 - a lost driver: keep going, the budget still holds
            logger.debug("stop signal unreachable", exc_info=True)
            return False
        if reason:
            self.set(reason)
        return self.event.is_set()


def follow_driver_logging(level: int) -> None:
    """In a Ray worker: log losstune's lines at the driver's ``-v`` level (Ray forwards a
    worker's stderr to the driver, prefixed with the worker's pid)."""
    if level >= logging.WARNING:
        return
    package = logging.getLogger("losstune")
    package.setLevel(level)
    if not package.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        package.addHandler(handler)
        package.propagate = False


def worker_entry(spec_data: dict[str, Any], url: str, n_trials: int, worker_index: int,
                 deadline: float | None, stop_handle: Any,
                 log_level: int = logging.WARNING) -> WorkerResult:
    """The body of one Ray worker task."""
    follow_driver_logging(log_level)
    spec = rebuild_spec(spec_data)
    out = run_worker(spec, url, n_trials=n_trials, worker_index=worker_index,
                     stop=RemoteStop(stop_handle), deadline=deadline, wait_running=True)
    return WorkerResult.from_run(out, worker=worker_index, host=socket.gethostname())


def error_text(exc: BaseException, url: str) -> str:
    """One scrubbed line for a worker's exception (Ray wraps it in RayTaskError)."""
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return scrub_text(f"{type(cause).__name__}: {text[0] if text else ''}", url)


def announce_plan(request: LaunchRequest, cluster: RayCluster) -> WorkerPlan:
    """Plan the workers' resources and tell the user about the cluster, the plan and the
    storage (both Ray launchers)."""
    echo, url, workers = request.echo, request.url, request.workers
    echo(cluster.describe())
    plan = plan_resources(request.spec, cluster, workers, request.threads)
    for note in plan.notes:
        echo(note)
    hint = storage_pkg.parallel_hint(url, workers)
    if hint:
        echo(hint)
    if cluster.address not in ("local", "existing") and \
            storage_pkg.backend_of(url) == "sqlite" and len(cluster.nodes) > 1:
        echo("warning: an SQLite file works across Ray nodes only on a shared file system "
             "that supports file locks; use PostgreSQL for multi-node studies")
    return plan


def run_ray_workers(request: LaunchRequest, *, cluster: RayCluster | None = None
                    ) -> list[WorkerResult]:
    """Start ``request.workers`` Ray tasks on the study and wait for them (the RayLauncher's
    body). ``cluster``: the connection :meth:`RayLauncher.prepare` made (None: connect now)."""
    import ray

    spec, url, workers, stop = request.spec, request.url, request.workers, request.stop
    cluster = cluster if cluster is not None else connect(spec, request.address)
    try:
        plan = announce_plan(request, cluster)
        spec_data = spec_for_workers(spec, plan.device,
                                     plan.threads.threads if plan.threads else None)
        signal_actor = ray.remote(num_cpus=0)(StopSignal).remote()
        task = ray.remote(num_cpus=plan.num_cpus, num_gpus=plan.num_gpus,
                          max_retries=2)(worker_entry)
        level = logging.getLogger("losstune").getEffectiveLevel()
        refs = {task.remote(spec_data, url, request.n_trials, i, request.deadline,
                            signal_actor, level): i
                for i in range(workers)}
        results: list[WorkerResult] = []
        errors: list[str] = []
        pending = list(refs)
        signalled = False
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
                if stop and not signalled:
                    signal_actor.set.remote(stop.reason or "stopped")
                    signalled = True
                for ref in done:
                    try:
                        results.append(ray.get(ref))
                    except Exception as exc:  # noqa: BLE001 - reported below, scrubbed
                        msg = f"worker {refs[ref]} failed: {error_text(exc, url)}"
                        errors.append(msg)
                        results.append(WorkerResult(started=0, reason=msg, worker=refs[ref]))
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        if errors and len(errors) == workers:
            raise LauncherError(f"all {workers} Ray worker(s) failed; {errors[0]}")
        return results
    finally:
        disconnect(cluster)
