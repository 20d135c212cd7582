"""A re-run that reproduces a logged execution from the cache is not logged twice."""

from __future__ import annotations

from workbench import Experiment
from workbench.cli import main
from workbench.prompts.registry import client
from workbench.rerun import FINGERPRINT_TAG


def parent_runs(name="triage"):
    c = client()
    runs = c.search_runs([c.get_experiment_by_name(name).experiment_id])
    return [r for r in runs if "mlflow.parentRunId" not in r.data.tags]


def test_a_fully_cached_identical_rerun_points_at_the_logged_run(make_experiment, llm_server):
    folder = make_experiment()
    first = Experiment.from_yaml(folder).run(progress=False)
    llm_server.reset()
    again = Experiment.from_yaml(folder).run(progress=False)
    assert llm_server.request_count == 0
    assert again.run_ids == first.run_ids and again.prompt_versions == first.prompt_versions
    assert [r.info.run_id for r in parent_runs()] == [first.run_ids["parent"]]
    assert any(f"match parent run {first.run_ids['parent']}" in w for w in again.warnings)
    assert again.report.verdict == first.report.verdict


def test_log_again_logs_a_new_parent_run(make_experiment):
    folder = make_experiment()
    first = Experiment.from_yaml(folder).run(progress=False)
    again = Experiment.from_yaml(folder).run(progress=False, log_again=True)
    assert again.run_ids["parent"] != first.run_ids["parent"]
    runs = parent_runs()
    assert len(runs) == 2 and len({r.data.tags[FINGERPRINT_TAG] for r in runs}) == 1
    assert not any("not logged again" in w for w in again.warnings)


def test_a_cached_rerun_of_other_examples_or_with_fresh_calls_is_logged(make_experiment):
    folder = make_experiment()
    Experiment.from_yaml(folder).run(progress=False)
    fewer = Experiment.from_yaml(folder).run(progress=False, limit=10)  # cached, other eval set
    assert fewer.frame["cached"].all()
    fresh = Experiment.from_yaml(folder).run(progress=False, refresh=["guided"])
    parents = {r.info.run_id for r in parent_runs()}
    assert len(parents) == 3
    assert {fewer.run_ids["parent"], fresh.run_ids["parent"]} < parents


def test_the_cli_says_where_the_run_is_and_logs_again_on_request(make_experiment, capsys):
    folder = make_experiment()
    assert main(["run", str(folder)]) == 0
    first = next(line.split()[-1] for line in capsys.readouterr().out.splitlines()
                 if "parent run" in line)
    assert main(["run", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "warning: not logged again: every call came from the cache" in out
    assert f"parent run  {first}" in out
    assert main(["run", str(folder), "--log-again"]) == 0
    assert f"parent run  {first}" not in capsys.readouterr().out
    assert len(parent_runs()) == 2
