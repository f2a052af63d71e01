"""Where a run's graph executes: local schedulers, a running scheduler, or a job queue.

The clusters are dask-jobqueue's own classes (``SLURMCluster``, ``PBSCluster``,
``SGECluster``, ``LSFCluster``, ``HTCondorCluster``, and its ``LocalCluster``, whose
"jobs" are local processes started from the same job script); daskref only maps a
kind name to the class, checks the options against the class's own keywords (so a
typo is one line, not a traceback from a worker that never starts) and sizes it
(``jobs`` or ``adapt``). Anything not given comes from dask-jobqueue's configuration
(``~/.config/dask/jobqueue.yaml``), as it would without daskref.

Worker memory is Dask's too: ``memory`` (per job; each worker gets ``memory /
processes``) is the limit, and ``memory_target``, ``memory_spill``, ``memory_pause``
and ``memory_terminate`` are the fractions of ``distributed.worker.memory``. Workers
of a job queue run in other processes on other hosts, so those fractions travel as
``DASK_DISTRIBUTED__WORKER__MEMORY__*`` variables exported by the job script (Dask
reads its configuration from the environment when the worker starts).

This module sits beside :mod:`daskref._compute`: it knows nothing of the science and
is used by the command line, mkrefs and the Python API (:func:`daskref.cluster`).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dask
import yaml

__all__ = [
    "CLUSTER_KINDS",
    "COMMON_OPTIONS",
    "ClusterError",
    "Execution",
    "MEMORY_OPTIONS",
    "cluster",
    "cluster_class",
    "option_names",
    "parse_adapt",
    "parse_options",
    "running",
]

#: ``--cluster`` kinds and the dask-jobqueue class of each (module, class name).
CLUSTER_KINDS: dict[str, tuple[str, str]] = {
    "slurm": ("dask_jobqueue.slurm", "SLURMCluster"),
    "pbs": ("dask_jobqueue.pbs", "PBSCluster"),
    "sge": ("dask_jobqueue.sge", "SGECluster"),
    "lsf": ("dask_jobqueue.lsf", "LSFCluster"),
    "htcondor": ("dask_jobqueue.htcondor", "HTCondorCluster"),
    "local": ("dask_jobqueue.local", "LocalCluster"),
}

#: Dask's worker memory fractions (``distributed.worker.memory.<name>``), as options.
MEMORY_OPTIONS: dict[str, str] = {
    "memory_target": "target",
    "memory_spill": "spill",
    "memory_pause": "pause",
    "memory_terminate": "terminate",
}

#: The options most runs set; named keys of the mkrefs ``cluster`` section.
COMMON_OPTIONS = ("queue", "account", "cores", "memory", "walltime", "processes",
                  "job_extra_directives", *MEMORY_OPTIONS)

#: Options whose value is a list: given several times on the command line, they add up.
LIST_OPTIONS = ("job_extra_directives", "job_script_prologue", "worker_extra_args",
                "job_directives_skip", "job_extra", "env_extra", "extra", "header_skip")

# keywords of the classes that daskref sets itself or that make no sense from a config
_INTERNAL = {"self", "scheduler", "name", "job_cls", "loop", "asynchronous", "config_name",
             "scheduler_cls", "security", "n_workers", "args", "kwargs", "job_kwargs",
             "base_class_kwargs"}


#: Seconds to wait for the first worker of a ``local`` cluster.
LOCAL_START_TIMEOUT = 120


class ClusterError(ValueError):
    """Execution settings that cannot be used: unknown kind or option, bad sizes."""


def cluster_class(kind: str):
    """The dask-jobqueue class of ``kind`` (see :data:`CLUSTER_KINDS`).

    Raises
    ------
    ClusterError
        An unknown kind, or dask-jobqueue is not installed.
    """
    if kind not in CLUSTER_KINDS:
        raise ClusterError(f"unknown cluster kind {kind!r}; kinds: {', '.join(CLUSTER_KINDS)}")
    module, name = CLUSTER_KINDS[kind]
    try:
        mod = __import__(module, fromlist=[name])
    except ImportError:
        raise ClusterError(f"a {kind} cluster needs dask-jobqueue "
                           "(pip install dask-jobqueue)") from None
    return getattr(mod, name)


def option_names(kind: str) -> list[str]:
    """Every option a ``kind`` cluster takes: its class's and its job class's keywords.

    Read from the signatures of the dask-jobqueue classes (the cluster, its job class
    and the base ``Job``), so a newer dask-jobqueue's options are accepted as they
    come; plus :data:`MEMORY_OPTIONS`.
    """
    from dask_jobqueue.core import Job

    cls = cluster_class(kind)
    names: dict[str, None] = {}
    for func in (cls.__init__, cls.job_cls.__init__, Job.__init__):
        for p in inspect.signature(func).parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in _INTERNAL:
                names[p.name] = None
    return sorted([*names, *MEMORY_OPTIONS])


def parse_options(items: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (``--cluster-option``) as a dict.

    A value is read as YAML (``cores=4`` is an int, ``job_extra_directives=[-C, gpu]``
    a list; anything else stays a string); ``-`` in a key is ``_``. A list option
    given several times (``job_extra_directives=--exclusive``) collects every value.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = str(item).partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ClusterError(f"--cluster-option {item!r}: expected KEY=VALUE")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        if isinstance(value, dict):  # 'a: b' parsed as a mapping: it was text
            value = text
        if key in LIST_OPTIONS:
            value = value if isinstance(value, list) else [value]
            out[key] = [*out.get(key, []), *(str(v) for v in value)]
        else:
            out[key] = value
    return out


def parse_adapt(value: Any) -> tuple[int, int] | None:
    """``MIN:MAX`` (or a two-item list) as two job counts; None for empty."""
    if value is None or value == "" or value == []:
        return None
    parts = value if isinstance(value, list | tuple) else str(value).split(":")
    try:
        low, high = (int(p) for p in parts)
    except (TypeError, ValueError):
        raise ClusterError(f"adapt {value!r}: expected MIN:MAX job counts, e.g. 0:10") from None
    if low < 0 or high < 1 or low > high:
        raise ClusterError(f"adapt {value!r}: need 0 <= MIN <= MAX and MAX >= 1")
    return low, high


def _check_memory(options: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key in MEMORY_OPTIONS:
        if options.get(key) is None:
            continue
        value = options[key]
        if value is False or (isinstance(value, str) and value.lower() == "false"):
            out[key] = False
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ClusterError(f"{key}={options[key]!r}: a fraction of the worker's memory "
                               "limit (0 to 1) or false") from None
        if not 0 < value <= 1:
            raise ClusterError(f"{key}={value}: a fraction of the worker's memory limit, "
                               "0 to 1 (or false)")
        out[key] = value
    return out


def check_options(kind: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` without the unset ones, checked against the class of ``kind``."""
    import difflib

    known = option_names(kind)
    out = {}
    for key, value in options.items():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ClusterError(f"a {kind} cluster has no option {key!r}{hint}; options: "
                               f"{', '.join(known)}")
        if value is not None and value != []:
            out[key] = value
    out.update(_check_memory(out))
    for key in ("cores", "processes"):
        if key in out and (not isinstance(out[key], int) or isinstance(out[key], bool)
                           or out[key] < 1):
            raise ClusterError(f"{key}={out[key]!r}: a positive integer")
    return out


def _memory_exports(memory: Mapping[str, Any]) -> list[str]:
    """Job-script lines exporting Dask's worker memory fractions to the workers."""
    lines = []
    for key, name in MEMORY_OPTIONS.items():
        if key in memory:
            value = "False" if memory[key] is False else repr(float(memory[key]))
            lines.append(f"export DASK_DISTRIBUTED__WORKER__MEMORY__{name.upper()}={value}")
    return lines


def cluster(kind: str, *, jobs: int | None = None, adapt: Any = None, **options):
    """A started dask-jobqueue cluster.

    Parameters
    ----------
    kind : str
        One of :data:`CLUSTER_KINDS`: ``slurm``, ``pbs``, ``sge``, ``lsf``,
        ``htcondor`` or ``local`` (local processes started like jobs).
    jobs : int, optional
        Jobs to submit now (``cluster.scale(jobs=N)``); default 1 unless ``adapt``.
    adapt : "MIN:MAX" or (int, int), optional
        Let the cluster grow and shrink between MIN and MAX jobs with the work.
    **options
        Keywords of the dask-jobqueue class (``queue``, ``account``, ``cores``,
        ``memory``, ``walltime``, ``processes``, ``job_extra_directives``,
        ``log_directory``, ``local_directory``, ...; see :func:`option_names`) and
        Dask's worker memory fractions (:data:`MEMORY_OPTIONS`). Unset ones come
        from dask-jobqueue's configuration.

    Returns
    -------
    dask_jobqueue.JobQueueCluster
        With its scheduler running and its jobs submitted; use it with
        ``distributed.Client(cluster)`` and ``close()`` it at the end (or use it as a
        context manager).

    Raises
    ------
    ClusterError
        An unknown kind or option, bad sizes, or a cluster dask-jobqueue refuses
        (e.g. no ``cores``/``memory`` given or configured).

    Examples
    --------
    >>> import daskref
    >>> from distributed import Client
    >>> with daskref.cluster("slurm", jobs=4, queue="normal", cores=8,
    ...                      memory="32GB", walltime="02:00:00") as cl, Client(cl):
    ...     daskref.write(daskref.readnoise(files), "readnoise.fits")  # doctest: +SKIP
    """
    cls = cluster_class(kind)
    options = check_options(kind, options)
    limits = parse_adapt(adapt)
    if jobs is not None and limits is not None:
        raise ClusterError("give jobs or adapt, not both")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ClusterError(f"jobs={jobs!r}: a positive integer")
    memory = {k: options.pop(k) for k in MEMORY_OPTIONS if k in options}
    exports = _memory_exports(memory)
    if exports and kind == "local":
        # local "jobs" run the worker command itself, without a shell or the script's
        # prologue, and inherit this process's environment
        os.environ.update(line.removeprefix("export ").split("=", 1) for line in exports)
    elif exports:
        options["job_script_prologue"] = [*exports, *options.get("job_script_prologue", [])]
    options.setdefault("python", sys.executable)  # the workers run the same environment
    try:
        cl = cls(**options)
    except (ValueError, TypeError) as exc:
        raise ClusterError(f"{kind} cluster: {exc}") from None
    if limits is not None:
        cl.adapt(minimum_jobs=limits[0], maximum_jobs=limits[1])
    else:
        cl.scale(jobs=jobs or 1)
    return cl


@dataclass
class Execution:
    """How a command runs its graph (the command line's and mkrefs' execution options).

    Attributes
    ----------
    scheduler : str or None
        ``threads`` (default), ``processes``, ``synchronous``, or the address of a
        running ``dask.distributed`` scheduler.
    workers : int or None
        Threads or processes of the local scheduler.
    kind : str or None
        A dask-jobqueue cluster to start (:data:`CLUSTER_KINDS`).
    options : dict
        Its options (:func:`cluster`).
    jobs, adapt
        Its size.
    """

    scheduler: str | None = None
    workers: int | None = None
    kind: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    jobs: int | None = None
    adapt: tuple[int, int] | None = None

    def check(self) -> Execution:
        """Raise :class:`ClusterError` for settings that do not go together."""
        if self.kind is None:
            if self.options or self.jobs is not None or self.adapt is not None:
                raise ClusterError("--cluster-option, --jobs and --adapt need --cluster KIND "
                                   "(or cluster.kind in the config)")
            return self
        if self.scheduler not in (None, "threads"):
            raise ClusterError(f"give --cluster {self.kind} or --scheduler {self.scheduler}, "
                               "not both")
        if self.jobs is not None and self.adapt is not None:
            raise ClusterError("give --jobs or --adapt, not both")
        if self.jobs is not None and self.jobs < 1:
            raise ClusterError(f"--jobs {self.jobs}: at least 1")
        self.options = check_options(self.kind, self.options)
        return self

    def describe(self) -> str:
        """One line: where the run goes."""
        if self.kind is None:
            return f"dask scheduler: {self.scheduler or 'threads'}"
        size = (f"adapting {self.adapt[0]}-{self.adapt[1]} jobs" if self.adapt
                else f"{self.jobs or 1} job(s)")
        return f"{self.kind} cluster, {size}"


def _is_local(scheduler: str | None) -> bool:
    return scheduler in (None, "threads", "processes", "synchronous", "sync")


@contextlib.contextmanager
def running(execution: Execution, *, announce=None):
    """Run the enclosed computations as ``execution`` says.

    Local schedulers are set through ``dask.config``; a scheduler address or a
    started cluster gets a ``distributed.Client`` (made the default, so
    :func:`daskref.compute` finds it and shows its progress). ``announce(line)`` is
    called with the dashboard link. The cluster is closed (its jobs cancelled) on
    the way out, also after an error or an interrupt.

    Raises
    ------
    ClusterError
        Bad settings, no ``distributed``, or an unreachable scheduler.
    """
    execution.check()
    if execution.kind is None and _is_local(execution.scheduler):
        config: dict[str, Any] = {"scheduler": execution.scheduler or "threads"}
        if execution.workers:
            config["num_workers"] = execution.workers
        with dask.config.set(config):
            yield None
        return
    try:
        from distributed import Client
    except ImportError:
        raise ClusterError("a distributed run needs the 'distributed' package") from None
    with contextlib.ExitStack() as stack:
        if execution.kind is not None:
            cl = cluster(execution.kind, jobs=execution.jobs, adapt=execution.adapt,
                         **execution.options)
            stack.callback(cl.close)
            client = Client(cl)
            if execution.kind == "local":
                # local workers start in seconds or not at all (a bad option): say so
                # rather than wait for them forever, as one waits for a batch queue
                try:
                    client.wait_for_workers(1, timeout=LOCAL_START_TIMEOUT)
                except TimeoutError:
                    client.close()
                    raise ClusterError(f"no worker of the local cluster started within "
                                       f"{LOCAL_START_TIMEOUT} s") from None
        else:
            try:
                client = Client(execution.scheduler, timeout="5s")
            except OSError as exc:
                raise ClusterError(f"cannot reach the dask scheduler at "
                                   f"{execution.scheduler}: {exc}") from None
        stack.enter_context(client)
        if announce is not None:
            where = execution.describe() if execution.kind else execution.scheduler
            announce(f"dask dashboard: {client.dashboard_link} ({where})")
        yield client
