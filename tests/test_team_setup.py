"""The team setup: an ``mlflow server`` backed by PostgreSQL, with a shared artifact folder.

The module starts its own PostgreSQL cluster (initdb into a temporary folder, as the
``postgres`` user when running as root, since PostgreSQL refuses root) and its own tracking
server, both on free loopback ports, once for all its tests, and stops both at the end.
Without the PostgreSQL server binaries (Debian package ``postgresql``, which
``scripts/system-deps.sh`` installs) the module skips and says so.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest

import workbench as wb
from workbench import Experiment, ModelConfig, PromptService, PromptTemplate
from workbench.prompts.registry import (
    alias_version,
    approve,
    client,
    history,
    load_policy,
    register_version,
    request_promotion,
    rollback,
)

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    pytest.skip("PostgreSQL server binaries not found (Debian package 'postgresql'; "
                "`make system-deps` installs it as root)")


def as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
    return ["runuser", "-u", "postgres", "--", *command]


@dataclass
class Postgres:
    url: str
    folder: Path


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    pytest.importorskip("psycopg2", reason="psycopg2-binary is the PostgreSQL driver")
    bin_dir = postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="workbench-pg-"))  # not under root's 0700 tmp
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    folder.chmod(0o700)
    port = free_port()
    run = lambda *cmd: subprocess.run(as_postgres([str(bin_dir / cmd[0]), *cmd[1:]]),  # noqa: E731
                                      check=True, capture_output=True, text=True, timeout=60)
    try:
        run("initdb", "-D", str(data), "-U", "workbench", "--auth=trust", "-E", "UTF8",
            "--no-sync")
        run("pg_ctl", "-D", str(data), "-l", str(folder / "postgres.log"), "-w", "-t", "30",
            "-o", f"-p {port} -h {HOST} -k {folder} -c fsync=off "
                  "-c synchronous_commit=off -c full_page_writes=off", "start")
        run("createdb", "-h", HOST, "-p", str(port), "-U", "workbench", "mlflow")
        yield Postgres(url=f"postgresql+psycopg2://workbench@{HOST}:{port}/mlflow",
                       folder=folder)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"PostgreSQL did not start: {exc.cmd}\n{exc.stdout}\n{exc.stderr}")
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m",
                                        "immediate", "-w", "stop"]),
                           capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class TrackingServer:
    uri: str
    artifacts: Path
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)  # the server and its workers
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)


def wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.3)
    pytest.fail(f"{url} not healthy after {timeout:.0f}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def tracking_server(postgres: Postgres) -> Iterator[TrackingServer]:
    port = free_port()
    artifacts = postgres.folder.parent / f"{postgres.folder.name}-artifacts"
    log = postgres.folder.parent / f"{postgres.folder.name}-mlflow.log"
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    # A database server keeps a connection pool: the workbench's NullPool default is for
    # SQLite files. No job runner: it serves scheduled evaluation jobs, a busy extra process.
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_SQLALCHEMYSTORE_POOLCLASS")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(mlflow_cli), "server", "--backend-store-uri", postgres.url,
             "--artifacts-destination", str(artifacts), "--host", HOST, "--port", str(port),
             "--workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env=env)
    server = TrackingServer(uri=f"http://{HOST}:{port}", artifacts=artifacts, process=process)
    try:
        wait_healthy(f"{server.uri}/health", process, log, timeout=120)
        yield server
    finally:
        server.stop()
        shutil.rmtree(artifacts, ignore_errors=True)
        log.unlink(missing_ok=True)


@pytest.fixture
def team(project, tracking_server, monkeypatch) -> TrackingServer:
    """This test's project talks to the shared tracking server instead of its own SQLite."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # an outage fails fast
    return tracking_server


def served_model(llm_server) -> ModelConfig:
    return ModelConfig(model="openai/test-model", api_base=llm_server.base_url, num_retries=0)


def test_a_shared_store_protects_production_by_default(team):
    assert load_policy().protected == ("production",)


def test_run_request_approve_and_serve_through_the_server(team, make_experiment):
    results = Experiment.from_yaml(make_experiment(name="team-triage")).run(progress=False)
    parent = client().get_run(results.run_ids["parent"])
    assert parent.info.status == "FINISHED"
    assert parent.info.artifact_uri.startswith("mlflow-artifacts:")
    stored = {p.name for p in team.artifacts.rglob("*") if p.is_file()}
    assert {"ab_report.json", "results.json"} <= stored  # in the shared artifact folder
    run_id = results.run_ids["guided"]
    traces = mlflow.search_traces(locations=[parent.info.experiment_id], run_id=run_id,
                                  return_type="list")
    spans = [span for span in traces[0].data.spans if span.span_type == "LLM"]
    assert len(traces) == 1 and len(spans) == 20  # each call a span, through the server

    request = wb.promote(results.report, alias="production", approver="alice")
    assert not request.promoted and alias_version("team-triage", "production") is None
    approve("team-triage", "production", approver="bob")
    guided = results.prompt_versions["guided"]
    assert alias_version("team-triage", "production") == guided

    reply = PromptService("team-triage", "production").complete(ticket="I want a refund")
    assert reply.version == guided and reply.text == "negative"
    moves = history("team-triage")
    assert list(moves["action"]) == ["request", "approval", "promotion"]
    assert moves.iloc[-1]["evidence"]["run_id"] == results.run_ids["parent"]


def test_a_running_service_sees_an_alias_move_and_a_rollback(team, llm_server):
    model = served_model(llm_server)
    v1, _ = register_version("team-move", PromptTemplate("First: {{x}}"), model)
    v2, _ = register_version("team-move", PromptTemplate("Second: {{x}}"), model)
    request_promotion("team-move", v1, "production", requester="alice")
    approve("team-move", "production", approver="bob")
    service = PromptService("team-move", "production", refresh_s=0.2)
    assert service.complete(x="hi").version == v1

    request_promotion("team-move", v2, "production", requester="alice")
    approve("team-move", "production", approver="bob")
    assert wait_for(lambda: service.complete(x="hi").version, v2) == v2
    assert llm_server.last_request["messages"][0]["content"] == "Second: hi"

    rollback("team-move", "production", actor="carol", reason="v2 misbehaves")
    assert wait_for(lambda: service.complete(x="hi").version, v1) == v1


def wait_for(read, want, timeout: float = 10.0):
    """Poll until ``read()`` returns ``want`` (alias moves take a refresh); the last value."""
    deadline = time.monotonic() + timeout
    value = read()
    while value != want and time.monotonic() < deadline:
        time.sleep(0.1)
        value = read()
    return value


def test_a_paused_server_is_found_before_any_call(team, make_experiment, llm_server,
                                                  monkeypatch):
    from workbench.store import StoreUnavailable

    experiment = Experiment.from_yaml(make_experiment(name="team-paused"))
    monkeypatch.setenv("WORKBENCH_STORE_TIMEOUT", "1")
    os.killpg(team.process.pid, signal.SIGSTOP)  # it accepts connections, answers nothing
    try:
        with pytest.raises(StoreUnavailable, match="did not answer in time"):
            experiment.run(progress=False)
    finally:
        os.killpg(team.process.pid, signal.SIGCONT)
    assert llm_server.request_count == 0
    results = experiment.run(progress=False)  # running again once it answers logs the run
    assert client().get_run(results.run_ids["parent"]).info.status == "FINISHED"


def test_a_server_paused_during_the_calls_keeps_the_results_and_the_next_run_logs_them(
        team, make_experiment, llm_server, monkeypatch):
    folder = make_experiment(name="team-paused-later")
    experiment = Experiment.from_yaml(folder)
    monkeypatch.setenv("WORKBENCH_STORE_TIMEOUT", "1")
    pause = lambda progress: progress.done == 1 and os.killpg(team.process.pid,  # noqa: E731
                                                              signal.SIGSTOP)
    experiment.progress.listeners.append(pause)
    try:
        started = time.monotonic()
        results = experiment.run(progress=False)
        assert time.monotonic() - started < 60  # not MLflow's minutes of retries
    finally:
        os.killpg(team.process.pid, signal.SIGCONT)
    assert len(results.frame) == 40 and results.run_ids == {}
    assert "did not answer in time" in results.log_error
    llm_server.reset()
    again = Experiment.from_yaml(folder).run(progress=False)
    assert llm_server.request_count == 0
    assert client().get_run(again.run_ids["parent"]).info.status == "FINISHED"


def test_workbench_serve_answers_over_http_and_outlives_the_server(team, llm_server):
    """Last in the module: it stops the tracking server to show the service keeps answering."""
    model = served_model(llm_server)
    version, _ = register_version("team-http", PromptTemplate("Say: {{x}}"), model)
    request_promotion("team-http", version, "production", requester="alice")
    approve("team-http", "production", approver="bob")
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="workbench-serve-")[1])
    with open(log, "w") as out:
        serve = subprocess.Popen(
            [str(Path(sys.executable).parent / "workbench"), "serve", "team-http@production",
             "--port", str(port), "--refresh", "0.2", "--tag", "application=team-test"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(f"http://{HOST}:{port}/healthz", serve, log, timeout=60)
        assert post(port, {"variables": {"x": "hello"}})["version"] == version

        team.stop()  # the registry goes away; the promoted version keeps serving
        time.sleep(0.5)
        answer = post(port, {"variables": {"x": "still there?"}, "tags": {"user": "u-1"}})
        assert answer["version"] == version and answer["output"] == "neutral"
        assert wait_for(lambda: health(port)["status"], "degraded") == "degraded"
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=15)
        text = log.read_text()
        log.unlink(missing_ok=True)
    served = [json.loads(line.split(" workbench.serving ", 1)[1]) for line in text.splitlines()
              if " workbench.serving {" in line]
    assert served and served[-1]["tags"] == {"application": "team-test", "user": "u-1"}
    assert "registry unreachable" in text


def post(port: int, body: dict) -> dict:
    request = urllib.request.Request(f"http://{HOST}:{port}/v1/prompts/team-http/complete",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def health(port: int) -> dict:
    with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=10) as response:
        return json.loads(response.read())
