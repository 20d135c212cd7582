"""`workbench run` and its MLflow store: opened before the first call, created for a new
project, never created for a mistyped experiment."""

from __future__ import annotations

from pathlib import Path

from workbench.cli import main
from workbench.prompts.registry import client


def _uri(database: Path) -> str:
    return f"sqlite:///{database}"


def test_a_broken_existing_store_stops_the_cli_before_any_call(make_experiment, llm_server,
                                                               project, capsys):
    (project / "mlruns" / "mlflow.db").write_bytes(b"not a database " * 100)
    assert main(["run", str(make_experiment())]) == 1
    err = capsys.readouterr().err
    assert "is unavailable" in err and "nothing was sent" in err, err
    assert "Traceback" not in err
    assert llm_server.request_count == 0


def test_the_cli_on_a_fresh_store_logs_a_complete_run(make_experiment, llm_server, project,
                                                      capsys):
    database = project / "mlruns" / "mlflow.db"
    database.unlink()  # a new project: the run creates its store before the first call
    assert main(["run", str(make_experiment())]) == 0
    out = capsys.readouterr().out
    assert _uri(database) in out
    parent_id = out.split("parent run", 1)[1].split()[0]
    runs = client(_uri(database))
    assert runs.get_run(parent_id).info.status == "FINISHED"
    children = runs.search_runs([runs.get_run(parent_id).info.experiment_id],
                                filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    names = {r.data.tags["mlflow.runName"].split(" · ")[0] for r in children}
    assert names >= {"bare", "guided"}
    assert llm_server.request_count == 40


def test_the_cli_does_not_create_a_store_for_a_mistyped_experiment(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["run", str(tmp_path / "no-such-experiment")]) == 1
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()
