"""The MLflow store opened in a child process while `workbench run` loads its experiment."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from workbench import store
from workbench.cli import main
from workbench.prompts.registry import client
from workbench.store import StoreUnavailable, check_store, prepare_store


def _uri(database: Path) -> str:
    return f"sqlite:///{database}"


def test_a_new_store_is_created_by_the_child_and_ready_when_the_run_is_logged(tmp_path):
    database = tmp_path / "mlruns" / "mlflow.db"
    uri = _uri(database)
    prepare_store(uri)
    assert check_store(uri) == uri  # before the calls: the folder is writable
    assert check_store(uri) == uri  # before logging: waits for the child's migrations
    assert uri in store._prepared and uri not in store._preparing
    with sqlite3.connect(database) as db:
        assert db.execute("select count(*) from alembic_version").fetchone() == (1,)
    assert client(uri).search_experiments(max_results=1)  # MLflow opens it as it is


def test_an_existing_store_is_opened_by_the_child_before_the_calls(tmp_path, _mlflow_template):
    database = tmp_path / "mlflow.db"
    database.write_bytes(_mlflow_template.read_bytes())
    uri = _uri(database)
    prepare_store(uri)
    assert check_store(uri) == uri
    assert uri in store._prepared and uri not in store._preparing  # waited for its answer


def test_a_store_whose_folder_cannot_be_made_fails_before_any_call(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    uri = _uri(blocker / "mlflow.db")
    prepare_store(uri)
    found = r"a-file/mlflow.db (is unavailable|could not be opened): .*nothing was sent"
    with pytest.raises(StoreUnavailable, match=found):
        check_store(uri)


def test_a_broken_existing_store_stops_the_cli_before_any_call(make_experiment, llm_server,
                                                               project, capsys):
    (project / "mlruns" / "mlflow.db").write_bytes(b"not a database " * 100)
    assert main(["run", str(make_experiment())]) == 1
    err = capsys.readouterr().err
    assert "could not be opened" in err and "nothing was sent" in err, err
    assert "Traceback" not in err
    assert llm_server.request_count == 0


def test_a_store_deleted_after_the_child_opened_it_is_not_recreated_empty(tmp_path,
                                                                         _mlflow_template):
    database = tmp_path / "mlflow.db"
    database.write_bytes(_mlflow_template.read_bytes())
    uri = _uri(database)
    prepare_store(uri)
    check_store(uri)
    database.unlink()
    with pytest.raises(StoreUnavailable, match="unavailable"):
        check_store(uri)
    assert not database.exists()


def test_the_cli_on_a_fresh_store_logs_a_complete_run(make_experiment, llm_server, project,
                                                      capsys):
    database = project / "mlruns" / "mlflow.db"
    database.unlink()  # a new project: the child creates the store while the run goes on
    assert main(["run", str(make_experiment())]) == 0
    out = capsys.readouterr().out
    assert _uri(database) in store._prepared
    parent_id = out.split("parent run", 1)[1].split()[0]
    runs = client(_uri(database))
    assert runs.get_run(parent_id).info.status == "FINISHED"
    children = runs.search_runs([runs.get_run(parent_id).info.experiment_id],
                                filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    assert {r.data.tags["mlflow.runName"] for r in children} >= {"bare", "guided"}
    assert llm_server.request_count == 40


def test_the_cli_does_not_create_a_store_for_a_mistyped_experiment(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["run", str(tmp_path / "no-such-experiment")]) == 1
    assert not (tmp_path / "mlruns" / "mlflow.db").exists()
