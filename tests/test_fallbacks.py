"""Answers a fallback model gave are shown as such, and do not pass for the variant's own."""

import pytest

import workbench as wb
from workbench import Experiment
from workbench.evaluation.gate import check
from workbench.prompts.promotion import PromotionRefused
from workbench.prompts.registry import alias_version
from workbench.results import format_summary
from workbench.tracking import load_results

from .llm_server import Faults


def with_fallback(make_experiment, llm_server):
    server = {"api_base": llm_server.base_url, "num_retries": 0}
    return make_experiment(models={"fake": {
        "model": "openai/test-model", "params": {"temperature": 0, "max_tokens": 8}, **server,
        "fallbacks": [{"model": "openai/test-model-2", **server}]}})


def test_a_comparison_on_fallback_answers_says_so_and_is_not_promoted(make_experiment,
                                                                     llm_server):
    folder = with_fallback(make_experiment, llm_server)
    llm_server.faults = Faults(down_models={"test-model"})
    results = Experiment.from_yaml(folder).run(progress=False)
    assert results.frame["error"].isna().all()

    summary = results.summary()
    assert summary.loc["bare", "fallback_share"] == 1.0
    assert summary.loc["guided", "fallback_share"] == 1.0
    assert "bare (100% fallback)" in format_summary(summary, results.metrics)

    report = results.compare("bare", "guided")
    assert report.winner == "guided"  # the statistics alone would promote it
    fallback = [c for c in report.caveats if "came from the fallback" in c]
    assert len(fallback) == 2
    assert fallback[0].startswith("bare: 20 of 20 answers (100%) came from the "
                                        "fallback openai/test-model-2, not openai/test-model")
    assert "Caveat: guided: 20 of 20" in report.to_text()
    assert "<b>Caveat:</b> bare: 20 of 20" in report._repr_html_()
    logged = load_results(results.run_ids["parent"])  # what `workbench compare` reads
    assert logged.compare("bare", "guided").caveats == report.caveats

    with pytest.raises(PromotionRefused, match=r"fallback model \(bare: 100%, guided: 100%"):
        wb.promote(report, alias="production", approver="alice")
    assert alias_version("triage", "production") is None
    outcome = wb.promote(report, alias="production", approver="alice",
                         reason="the fallback is the model we will serve")
    assert outcome.promoted


def test_the_gate_flags_a_check_answered_by_a_fallback(make_experiment, llm_server):
    folder = with_fallback(make_experiment, llm_server)
    llm_server.faults = Faults(down_models={"test-model"})
    result = check(folder, candidate="guided", limit=4)
    assert any(line.startswith("  caveat: guided: 4 of 4 answers (100%) came from the "
                               "fallback openai/test-model-2") for line in result.lines)


def test_a_run_its_own_model_answered_has_no_fallback_share(make_experiment):
    results = Experiment.from_yaml(make_experiment()).run(progress=False, track=False)
    assert (results.summary()["fallback_share"] == 0.0).all()
    assert not any("fallback" in c for c in results.compare().caveats)
    assert "fallback" not in format_summary(results.summary(), results.metrics)
