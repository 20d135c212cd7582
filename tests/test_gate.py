"""The regression gate: candidate vs. the prompt at an alias, as a CLI step and in pytest."""

import json

import pytest

from workbench.cli import main
from workbench.evaluation.gate import check
from workbench.experiment import Experiment
from workbench.testing import assert_no_regression

from .llm_server import Faults


def put_at_alias(folder, variant, alias="production"):
    """Register a variant's prompt and point the alias at it, as a promotion would."""
    from workbench.prompts.registry import client, register_version

    exp = Experiment.from_yaml(folder)
    chosen = next(v for v in exp.variants if v.name == variant)
    version, _ = register_version(exp.spec.prompt_registry_name, chosen.prompt, chosen.model)
    client().set_prompt_alias(exp.spec.prompt_registry_name, alias, version)
    return version


def test_a_better_candidate_passes(make_experiment):
    folder = make_experiment()
    put_at_alias(folder, "bare")
    result = check(folder, candidate="guided")
    assert result.passed, result.to_text()
    assert result.baseline == "production" and result.candidate == "guided"
    assert result.report.pairs[0].primary.mean_b == 1.0
    assert result.to_text().endswith("PASS: no regression")


def test_a_worse_candidate_fails_the_ci_step(make_experiment, capsys):
    folder = make_experiment()
    put_at_alias(folder, "guided")
    code = main(["check", str(folder), "--baseline", "production", "--candidate", "bare"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "'bare' vs prompts:/triage@production" in out
    assert "exact_match (primary)" in out and "REGRESSED" in out
    assert "FAIL: exact_match regressed significantly (1.000 → 0.500" in out


def test_the_pytest_helper_raises_with_the_report(make_experiment):
    folder = make_experiment()
    put_at_alias(folder, "guided")
    with pytest.raises(AssertionError, match="FAIL: exact_match regressed"):
        assert_no_regression(folder, candidate="bare")
    assert assert_no_regression(folder, candidate="guided").passed


@pytest.mark.parametrize(("candidate", "passed"), [("guided", True), ("bare", False)])
def test_without_a_prompt_at_the_alias_only_thresholds_apply(make_experiment, candidate,
                                                             passed):
    folder = make_experiment(gate={"thresholds": {"exact_match": 0.9}})
    result = check(folder, candidate=candidate)
    assert result.passed is passed, result.to_text()
    assert result.baseline is None and "no prompt at prompts:/triage@production" in result.lines[0]
    if not passed:  # bare is also right on half of a balanced set: chance level
        assert result.failures[0] == "exact_match 0.500 is below its threshold 0.9"
        assert result.failures[1].startswith("bare is degenerate: exact_match 0.500 is not")


def test_the_regression_set_replaces_the_eval_set(make_experiment):
    folder = make_experiment()
    easy = [{"id": "r1", "ticket": "I love it", "label": "positive"},
            {"id": "r2", "ticket": "refund please", "label": "negative"}]
    (folder / "data" / "regression.jsonl").write_text("\n".join(map(json.dumps, easy)))
    spec = folder / "experiment.yaml"
    spec.write_text(spec.read_text() + "gate:\n  regression_set: {path: data/regression.jsonl}\n")
    put_at_alias(folder, "guided")
    result = check(folder, candidate="bare")  # bare gets these easy ones right
    assert result.passed, result.to_text()
    assert len(result.results.frame) == 4


def test_failing_calls_fail_the_gate(make_experiment, llm_server):
    folder = make_experiment(gate={"max_error_rate": 0.0})
    llm_server.faults.down_models = {"test-model"}
    result = check(folder, candidate="guided", limit=3)
    assert not result.passed
    assert result.failures[0].startswith("3/3 candidate calls failed")


@pytest.mark.parametrize(
    ("gate", "message"),
    [({"guardrails": ["tone"]}, "gate.guardrails: 'tone' is not a scorer"),
     ({"thresholds": {"tone": 1}}, "gate.thresholds: 'tone' is not a scorer"),
     ({"alpha": 2}, "gate.alpha")],
)
def test_gate_settings_are_checked_when_the_experiment_loads(make_experiment, gate, message):
    from workbench.errors import SpecError

    with pytest.raises(SpecError, match=message):
        Experiment.from_yaml(make_experiment(gate=gate))


def test_an_ambiguous_candidate_asks_for_one(make_experiment):
    from workbench.errors import WorkbenchError

    folder = make_experiment(baseline=None)
    with pytest.raises(WorkbenchError, match="choose one with --candidate"):
        check(folder)


@pytest.mark.parametrize(("guardrails", "passed"), [([], True), (["exact_match"], False)])
def test_a_guardrail_regression_fails_even_when_the_primary_holds(make_experiment, guardrails,
                                                                   passed):
    folder = make_experiment(
        scorers=[{"type": "length", "max_words": 50}, {"type": "exact_match", "expected": "label"}],
        primary_metric="length", gate={"guardrails": guardrails})
    put_at_alias(folder, "guided")
    result = check(folder, candidate="bare")
    assert result.passed is passed, result.to_text()
    mark = "REGRESSED" if guardrails else "worse (not gated)"
    assert any(line.strip().startswith("exact_match") and line.endswith(mark)
               for line in result.lines)


def test_checking_against_the_promoted_version_reuses_the_runs_answers(make_experiment,
                                                                      llm_server, capsys):
    import workbench as wb

    folder = make_experiment()  # its model has temperature: 0, which the registry returns as 0.0
    results = Experiment.from_yaml(folder).run(progress=False)
    wb.promote(results.compare("bare", "guided"), alias="production", approver="alice")
    sent = llm_server.request_count
    assert main(["check", str(folder), "--candidate", "bare"]) == 1
    out, err = capsys.readouterr()
    assert llm_server.request_count == sent, "check called the models again"
    assert "calls: 0 sent, 40 from the response cache" in out
    assert "calls" in err and "cached=40" in err  # the progress bar, on stderr


def test_check_counts_what_it_sent_and_what_came_from_the_cache(make_experiment, llm_server):
    folder = make_experiment()
    put_at_alias(folder, "bare")
    first = check(folder, candidate="guided", limit=5)
    assert "  calls: 10 sent, 0 from the response cache" in first.lines
    assert llm_server.request_count == 10
    second = check(folder, candidate="guided", limit=6)
    assert "  calls: 2 sent, 10 from the response cache" in second.lines
    assert llm_server.request_count == 12


def test_a_check_over_the_context_window_fails_before_any_call(make_experiment, llm_server,
                                                               capsys):
    folder = make_experiment(models={"fake": {
        "model": "openai/test-model", "api_base": llm_server.base_url, "context_window": 12,
        "params": {"max_tokens": 8}, "num_retries": 0}})
    put_at_alias(folder, "bare")
    assert main(["check", str(folder), "--candidate", "guided"]) == 1
    err = capsys.readouterr().err
    assert "do not fit the context window; nothing was sent" in err
    assert "run.context_policy: truncate" in err  # the fix, named
    assert llm_server.request_count == 0


def test_max_cost_refuses_a_check_estimated_over_it(make_experiment, llm_server, capsys):
    folder = make_experiment(models={"fake": {
        "model": "openai/test-model", "api_base": llm_server.base_url, "num_retries": 0,
        "params": {"max_tokens": 8}, "input_cost_per_token": 0.001,
        "output_cost_per_token": 0.002}})
    put_at_alias(folder, "bare")
    assert main(["check", str(folder), "--candidate", "guided", "--max-cost", "0.05"]) == 1
    assert "over max_cost $0.0500; nothing was sent" in capsys.readouterr().err
    assert llm_server.request_count == 0


def test_a_check_that_reaches_max_cost_stops_and_fails(make_experiment, llm_server):
    # the primary is down and its fallback costs far more than the estimate assumed
    server = {"api_base": llm_server.base_url, "num_retries": 0, "params": {"max_tokens": 8}}
    folder = make_experiment(models={"fake": {
        "model": "openai/test-model", "input_cost_per_token": 1e-9,
        "output_cost_per_token": 1e-9, **server,
        "fallbacks": [{"model": "openai/test-model-2", "input_cost_per_token": 1.0,
                       "output_cost_per_token": 1.0, **server}]}})
    put_at_alias(folder, "bare")
    llm_server.faults = Faults(down_models={"test-model"})
    result = check(folder, candidate="guided", max_cost=0.5)
    assert not result.passed
    assert result.failures[0].startswith("the check did not finish (stopped at max_cost $0.5000")
    assert llm_server.count_for("test-model-2") < 40
