"""A constant-answer winner on a balanced binary set: flagged, not promoted, fails the gate."""

from __future__ import annotations

import json

import pytest

import workbench as wb
from workbench import Experiment
from workbench.cli import main
from workbench.evaluation.gate import check
from workbench.prompts.promotion import PromotionRefused
from workbench.prompts.registry import alias_version, client, history

HEADLINES = [{"id": f"h{i:03d}", "headline": f"headline number {i}", "is_sarcastic": i % 2}
             for i in range(20)]


def constant_one(body):
    """'Guided' answers 1 to everything; 'bare' answers in sentences, with the right label."""
    messages = json.dumps(body["messages"])
    if "one word" in messages:
        return "1"
    number = int(body["messages"][-1]["content"].rsplit(" ", 1)[-1])
    return f"I would say the label is {number % 2}."


@pytest.fixture
def sarcasm(make_experiment, llm_server):
    llm_server.responder = constant_one

    def make(primary="exact_match", **overrides):
        return make_experiment(
            "sarcasm", rows=HEADLINES,
            prompts={"bare": {"template": "Is this sarcastic? {{headline}}"},
                     "guided": {"messages": [
                         {"role": "system", "content": "Answer with one word: 1 or 0."},
                         {"role": "user", "content": "{{headline}}"}]}},
            scorers=[{"type": "exact_match", "expected": "is_sarcastic"},
                     {"type": "label", "labels": [0, 1], "expected": "is_sarcastic"}],
            primary_metric=primary, **overrides)
    return make


def test_the_constant_winner_is_flagged_and_not_promoted(sarcasm):
    results = Experiment.from_yaml(sarcasm()).run(progress=False)
    report = results.report
    assert report.winner == "guided"  # 0.50 exact match beats 0.00
    assert list(results.degenerate()) == ["bare", "guided"]
    assert "answers nearly constant on exact_match ('1' in 100% of 20 calls" in \
        results.degenerate()["guided"]
    assert any(c.startswith("guided is degenerate: answers nearly constant on exact_match")
               for c in report.caveats)
    assert "Caveat: guided is degenerate" in report.to_text()
    guided = results.classification()["guided"]
    assert guided.confusion.loc["0", "1"] == 10 and guided.recall == {"0": 0.0, "1": 1.0}
    assert results.summary().loc["guided", "exact_match_degenerate"]

    with pytest.raises(PromotionRefused, match=r"'guided' is degenerate: answers nearly "
                                               r"constant on exact_match.*give reason="):
        wb.promote(report, alias="production", approver="alice")
    assert alias_version("sarcasm", "production") is None

    moved = wb.promote(report, alias="production", approver="alice",
                       reason="a placeholder until the labelled set grows")
    assert moved.promoted and alias_version("sarcasm", "production") == moved.version
    last = history("sarcasm").iloc[-1]
    assert last["reason"] == "a placeholder until the labelled set grows"
    assert last["evidence"]["degenerate"].startswith("answers nearly constant on exact_match")


def test_the_label_scorer_compares_the_sentences_fairly(sarcasm):
    results = Experiment.from_yaml(sarcasm(primary="label")).run(progress=False, track=False)
    summary = results.summary()
    assert summary.loc["bare", "label"] == 1.0 and summary.loc["bare", "exact_match"] == 0.0
    assert results.report.winner == "bare" and list(results.degenerate()) == ["guided"]
    assert not summary.loc["bare", "label_degenerate"]
    assert summary.loc["bare", "label_balanced_accuracy"] == 1.0


def test_the_confusion_matrix_goes_to_each_variant_run(sarcasm):
    results = Experiment.from_yaml(sarcasm()).run(progress=False)
    c = client()
    files = {f.path for f in c.list_artifacts(results.run_ids["guided"], "classification")}
    assert files == {f"classification/{m}_confusion.{ext}" for m in ("exact_match", "label")
                     for ext in ("json", "png")}
    metrics = c.get_run(results.run_ids["guided"]).data.metrics
    assert metrics["exact_match_degenerate"] == 1.0 and metrics["label_kappa"] == 0.0
    assert metrics["label_recall.0"] == 0.0
    assert "label_top_answer" not in metrics  # the answer "1" is text, not a measurement
    assert metrics["label_top_answer_share"] == 1.0


def test_workbench_run_promote_refuses_unless_given_a_reason(sarcasm, capsys):
    folder = sarcasm()
    assert main(["run", str(folder), "--promote", "staging", "--approver", "ci"]) == 1
    out = capsys.readouterr().out
    assert "Caveat: guided is degenerate" in out
    assert "not promoted: 'guided' is degenerate: answers nearly constant" in out
    assert "the reason is --reason TEXT" in out
    assert alias_version("sarcasm", "staging") is None
    assert main(["run", str(folder), "--promote", "staging", "--approver", "ci",
                 "--reason", "known constant, testing the serving path"]) == 0
    assert "promoted guided" in capsys.readouterr().out
    assert history("sarcasm").iloc[-1]["reason"] == "known constant, testing the serving path"


def test_workbench_check_fails_a_degenerate_candidate(sarcasm, capsys):
    folder = sarcasm()
    result = check(folder, candidate="guided")  # nothing at the alias yet
    assert not result.passed
    assert result.failures[0].startswith("guided is degenerate: answers nearly constant")
    assert main(["check", str(folder), "--candidate", "guided"]) == 1
    assert "degenerate guided: answers nearly constant" in capsys.readouterr().out


def test_a_classifier_that_discriminates_still_promotes(make_experiment):
    results = Experiment.from_yaml(make_experiment()).run(progress=False)
    assert set(results.degenerate()) == {"bare"}  # bare is right on half: chance level
    assert not any(c.startswith("guided") for c in results.report.caveats)
    assert wb.promote(results.report, alias="staging", approver="alice").promoted


def test_a_single_variant_run_still_says_it_is_degenerate(sarcasm, capsys):
    folder = sarcasm()
    (folder / "prompts" / "bare.yaml").unlink()
    spec = (folder / "experiment.yaml").read_text().replace("  bare: prompts/bare.yaml\n", "")
    (folder / "experiment.yaml").write_text(spec.replace("baseline: bare\n", ""))
    assert main(["run", str(folder), "--no-track"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sarcasm: 1 variants")
    assert "caveat: guided is degenerate: answers nearly constant on exact_match" in out


def test_results_read_back_from_mlflow_keep_the_labels(sarcasm):
    from workbench.tracking import load_results

    results = Experiment.from_yaml(sarcasm()).run(progress=False)
    again = load_results(results.run_ids["parent"])
    assert again.degenerate() == results.degenerate()
    assert again.classification()["guided"].confusion.equals(
        results.classification()["guided"].confusion)
    assert any("guided is degenerate" in c for c in again.compare("bare", "guided").caveats)
