"""The MLflow store around a run: reachable before the first call, created once, runs owned.

An execution is logged only after its calls, so a store found dead at that point has
already cost every call and, over HTTP, minutes of MLflow's retries. :func:`check_store`
asks it one question, without retries and with a short timeout, before anything is sent.

A new SQLite store runs MLflow's migrations on first open; two processes doing that at once
break each other ("table already exists"), so the first open of a SQLite store is serialised
with a lock file next to the database.

Each run records the host and process that logs it: a run still RUNNING whose process is
gone was cut short (killed), and :func:`mark_abandoned` says so instead of leaving it
looking alive forever.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import WorkbenchError
from .settings import store_timeout, tracking_uri

HOST_TAG = "workbench.host"
PID_TAG = "workbench.pid"
PID_START_TAG = "workbench.pid_start"
ABANDONED_TAG = "workbench.abandoned"
PARTIAL_TAG = "partial"
_FIX = ("fix: start the tracking server (docs/team-setup.md) or point MLFLOW_TRACKING_URI "
        "at a reachable store; track=False (--no-track) runs without logging")


class StoreUnavailable(WorkbenchError):
    """The MLflow store cannot be reached or opened; raised before any call is sent."""


def check_store(uri: str | None = None, *, timeout: float | None = None) -> str:
    """Open the store (creating a SQLite one) and ask it one question; returns the URI.

    Raises :class:`StoreUnavailable` within about ``timeout`` seconds (default: setting
    ``WORKBENCH_STORE_TIMEOUT``) when a server refuses, does not answer or fails.
    """
    uri = uri or tracking_uri()
    timeout = store_timeout() if timeout is None else timeout
    scheme = uri.split(":", 1)[0].split("+")[0].lower()
    try:
        if scheme in ("http", "https"):
            _probe_http(uri, timeout)
        elif scheme == "sqlite":
            _open_sqlite(uri)  # a local file: creating it may take seconds, it never hangs
        else:
            _within(timeout, lambda: _client(uri).search_experiments(max_results=1))
    except StoreUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001  (every way a store can fail, said in one line)
        raise StoreUnavailable(f"MLflow store {uri} is unavailable: {_reason(exc)}; nothing "
                               f"was sent.\n  {_FIX}") from exc
    return uri


def _client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _probe_http(uri: str, timeout: float) -> None:
    from mlflow.tracking._tracking_service.utils import _get_store
    from mlflow.utils.rest_utils import http_request

    creds = _get_store(uri).get_host_creds()
    response = http_request(creds, "/api/2.0/mlflow/experiments/search", "POST",
                            max_retries=0, timeout=timeout, json={"max_results": 1})
    if response.status_code != 200:
        raise StoreUnavailable(
            f"MLflow server {uri} answered HTTP {response.status_code} "
            f"({response.text[:200].strip()}); nothing was sent.\n  {_FIX}")


def _open_sqlite(uri: str) -> None:
    path = uri[len("sqlite:///"):].split("?", 1)[0] if uri.startswith("sqlite:///") else ""
    if not path or path == ":memory:":
        _client(uri).search_experiments(max_results=1)
        return
    database = Path(path)
    database.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(database.with_name(database.name + ".lock")):
        _client(uri).search_experiments(max_results=1)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (where the platform has ``fcntl``)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; concurrent first runs there are not serialised
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _within(timeout: float, probe: Callable[[], Any]) -> None:
    """Run ``probe`` in a helper thread: a database driver may retry for minutes."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            probe()
        except BaseException as exc:  # noqa: BLE001  (handed to the waiting thread)
            failure.append(exc)

    thread = threading.Thread(target=run, name="workbench-store-check", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout:g} s")
    if failure:
        raise failure[0]


def _reason(exc: BaseException) -> str:
    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\][^'\")]*", text)
    if errno:
        return errno.group(0).strip()
    if "timed out" in text.lower() or "timeout" in type(exc).__name__.lower():
        return "it did not answer in time (timed out)"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:300]


# ---- which process logs a run ---------------------------------------------------------------
def process_tags() -> dict[str, str]:
    """Tags naming this process, so a later run can tell whether the logger is still alive."""
    pid = os.getpid()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PID_START_TAG: _started(pid)}


def _started(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' where /proc is missing):
    with the pid it names one process, even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    now = _started(pid)
    return not (started and now and now != started)


def mark_abandoned(c: Any, experiment_id: str) -> list[str]:
    """Mark KILLED the experiment's RUNNING runs whose logging process on this host is gone.

    Runs of live processes, of other hosts (whose processes cannot be checked from here) and
    runs not started by the workbench are left alone. Returns the ids marked.
    """
    host = socket.gethostname()
    runs = c.search_runs([experiment_id], max_results=500,
                         filter_string=f"attributes.status = 'RUNNING' "
                                       f"and tags.`{HOST_TAG}` = '{host}'")
    marked = []
    for run in runs:
        pid = run.data.tags.get(PID_TAG, "")
        if not pid.isdigit() or _alive(int(pid), run.data.tags.get(PID_START_TAG, "")):
            continue
        c.set_tag(run.info.run_id, ABANDONED_TAG,
                  f"process {pid} on {host} ended before it finished logging this run; "
                  f"marked KILLED by process {os.getpid()} at "
                  f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
        c.set_terminated(run.info.run_id, "KILLED")
        marked.append(run.info.run_id)
    return marked


def source_tags(source_dir: Path | None) -> dict[str, str]:
    """Where a run came from: the experiment folder, its git commit, the workbench version
    and the process logging it."""
    tags = {"mlflow.source.type": "LOCAL", "workbench.version": _version(), **process_tags()}
    if source_dir is not None:
        tags["mlflow.source.name"] = str(source_dir)
        try:
            commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source_dir, text=True,
                                    capture_output=True, timeout=5, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            commit = ""
        if commit:
            tags["mlflow.source.git.commit"] = commit
    return tags


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("prompt-workbench")
    except PackageNotFoundError:
        return "unknown"
