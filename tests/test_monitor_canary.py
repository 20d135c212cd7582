"""The provider-drift canary: steady answers pass, a silently changed model is caught."""

from __future__ import annotations

import sqlite3

import pytest

import workbench as wb
from workbench.cli import main

from .llm_server import scripted


@pytest.fixture
def promoted(make_experiment):
    folder = make_experiment()
    results = wb.Experiment.from_yaml(folder / "experiment.yaml").run()
    wb.promote(results.compare("bare", "guided"), alias="production", approver="test")
    return folder


def test_the_first_run_is_the_reference_and_a_steady_model_passes(promoted, capsys):
    assert main(["canary", str(promoted), "--limit", "8"]) == 0
    assert "recorded as the reference" in capsys.readouterr().out
    assert main(["canary", str(promoted), "--limit", "8"]) == 0
    out = capsys.readouterr().out
    assert "0% of the answers changed" in out and out.rstrip().endswith("no drift")


def test_a_model_updated_behind_the_same_name_is_drift(promoted, llm_server, capsys, project):
    assert main(["canary", str(promoted)]) == 0  # all 20 examples
    llm_server.responder = scripted({}, default="POSITIVE!")  # the provider changed the model
    assert main(["canary", str(promoted)]) == 1
    out = capsys.readouterr().out
    assert "DRIFT: 100% of the answers changed (allowed 20%)" in out
    assert "exact_match changed significantly" in out
    with sqlite3.connect(project / ".workbench" / "usage.sqlite") as db:
        alerts = db.execute("select kind, key, payload from alerts").fetchall()
    assert [a[:2] for a in alerts] == [("canary", "prompt=triage@production v2")]
    assert "model openai/test-model: 100% of the answers changed" in alerts[0][2]


def test_no_prompt_at_the_alias_is_an_error_not_a_drift(make_experiment, capsys):
    folder = make_experiment()
    assert main(["canary", str(folder), "--alias", "production"]) == 2
    assert "does not exist; fix: promote a version first" in capsys.readouterr().err
