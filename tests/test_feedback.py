"""Human feedback: a round trip through MLflow assessments, and judge-human agreement."""

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from workbench.evaluation import feedback
from workbench.evaluation.feedback import Agreement, FeedbackError, agreement, cohen_kappa


@pytest.fixture
def run_id(project):
    from workbench.prompts.registry import client

    c = client()
    experiment_id = c.create_experiment("feedback")
    return c.create_run(experiment_id).info.run_id


def test_labels_round_trip_through_mlflow_assessments(run_id):
    feedback.record(run_id, "t001", annotator="alice", thumbs=True, variant="guided")
    feedback.record(run_id, "t001", annotator="bob", score=2, comment="too terse",
                    variant="guided")
    feedback.record(run_id, "t002", annotator="alice", comment="odd tone")
    feedback.record(run_id, "t001", annotator="alice", thumbs=False, variant="guided")

    labels = feedback.load(run_id)
    assert list(labels.columns) == ["example_id", "variant", "annotator", "thumbs", "score",
                                    "comment", "at"]
    rows = labels.drop(columns="at").astype(object).where(labels.notna(), None)
    assert rows.values.tolist() == [
        ["t001", "guided", "alice", True, None, None],
        ["t001", "guided", "bob", None, 2, "too terse"],
        ["t002", None, "alice", None, None, "odd tone"],
        ["t001", "guided", "alice", False, None, None],
    ]
    assert labels["at"].is_monotonic_increasing


def test_labels_are_mlflow_human_feedback_on_a_trace_of_the_run(run_id):
    import mlflow

    feedback.record(run_id, "t001", annotator="alice", thumbs=True, variant="guided")
    feedback.record(run_id, "t001", annotator="bob", thumbs=False, variant="guided")
    from workbench.prompts.registry import client

    where = [client().get_run(run_id).info.experiment_id]
    traces = mlflow.search_traces(run_id=run_id, return_type="list", locations=where)
    assert len(traces) == 1  # one trace per (example, variant), labels appended to it
    assessments = traces[0].info.assessments
    assert [(a.name, a.feedback.value, a.source.source_type, a.source.source_id)
            for a in assessments] == [("human_thumbs", True, "HUMAN", "alice"),
                                      ("human_thumbs", False, "HUMAN", "bob")]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({}, "at least one of"), ({"score": 6}, "1 to 5"), ({"score": True}, "1 to 5"),
     ({"thumbs": True, "annotator": " "}, "annotator")],
)
def test_bad_labels_are_refused_before_anything_is_written(kwargs, message):
    kwargs = {"annotator": "alice", **kwargs}
    with pytest.raises(FeedbackError, match=message):
        feedback.record("no-such-run", "t001", **kwargs)


def test_an_unknown_run_is_a_clear_error(project):
    with pytest.raises(FeedbackError, match="run 'nope' not found"):
        feedback.record("nope", "t001", annotator="alice", thumbs=True)


def test_labels_on_variant_runs_show_from_the_parent_and_in_the_results_table(run_id):
    from workbench.prompts.registry import client

    c = client()
    parent = c.get_run(run_id)
    child = c.create_run(parent.info.experiment_id, run_name="guided",
                         tags={"mlflow.parentRunId": run_id}).info.run_id
    results = pd.DataFrame({"variant": ["bare", "guided", "bare", "guided"],
                            "example_id": ["t1", "t1", "t2", "t2"], "output": list("abcd")})
    feedback.record(child, "t1", annotator="alice", thumbs=False, variant="guided")
    feedback.record(run_id, "t1", annotator="bob", score=5)

    labels = feedback.load(run_id)
    assert sorted(labels["annotator"]) == ["alice", "bob"]
    table = feedback.join(results, labels)
    assert len(table) == len(results)
    by_row = table.set_index(["example_id", "variant"])
    assert by_row.loc[("t1", "guided"), "human.thumbs"] == False  # noqa: E712
    assert by_row.loc[("t1", "bare"), "human.score"] == 5  # no variant: applies to all
    assert by_row.loc[("t2", "bare"), ["human.thumbs", "human.score"]].isna().all()


def _labels(rows):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return pd.DataFrame([{"example_id": e, "variant": v, "annotator": a, "thumbs": t,
                          "score": s, "comment": None, "at": start + timedelta(minutes=i)}
                         for i, (e, v, a, t, s) in enumerate(rows)])


def _scores(values, metric="judge"):
    return pd.DataFrame({"example_id": [f"e{i}" for i in range(len(values))],
                         "variant": "v", f"score.{metric}": values})


@pytest.mark.parametrize(
    ("a", "b", "kappa"),
    [([1, 1, 0, 0], [1, 1, 0, 0], 1.0),
     ([1, 0, 1, 0], [0, 1, 0, 1], -1.0),
     # the classic worked example: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> 0.4
     ([1] * 25 + [0] * 25, [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15, 0.4)],
)
def test_cohen_kappa(a, b, kappa):
    assert cohen_kappa(a, b) == pytest.approx(kappa)


def test_cohen_kappa_is_undefined_when_everything_is_one_class():
    assert math.isnan(cohen_kappa([1, 1, 1], [1, 1, 1]))


def test_a_judge_that_agrees_with_people_is_trusted():
    judge = [1.0, 0.0] * 15
    labels = _labels([(f"e{i}", "v", "ann", bool(v), None) for i, v in enumerate(judge)])
    result = agreement(_scores(judge), labels, "judge")
    assert isinstance(result, Agreement)
    assert (result.n, result.accuracy, result.kappa) == (30, 1.0, 1.0)
    assert result.trusted and result.verdict.startswith("trust")


def test_a_judge_that_passes_everything_is_not_trusted():
    humans = [True, False] * 15
    labels = _labels([(f"e{i}", "v", "ann", h, None) for i, h in enumerate(humans)])
    result = agreement(_scores([1.0] * 30), labels, "judge")
    assert result.accuracy == 0.5 and result.kappa == 0.0
    assert result.verdict.startswith("do not trust") and not result.trusted


def test_scores_and_a_1_to_5_judge_are_compared_as_pass_fail():
    # humans: 5, 4 pass; 2 fails. judge 1-5: 4 passes, 3 fails.
    labels = _labels([("e0", "v", "ann", None, 5), ("e1", "v", "ann", None, 4),
                      ("e2", "v", "ann", None, 2)])
    result = agreement(_scores([5.0, 3.0, 1.0]), labels, "judge")
    assert (result.n, result.accuracy) == (3, pytest.approx(2 / 3))
    assert result.verdict.startswith("undecided: 3 labels are too few")


def test_only_each_annotators_latest_label_counts():
    labels = _labels([("e0", "v", "ann", False, None), ("e0", "v", "ann", True, None),
                      ("e1", "v", "ann", False, None)])
    result = agreement(_scores([1.0, 0.0]), labels, "judge")
    assert (result.n, result.accuracy) == (2, 1.0)


def test_agreement_names_a_missing_metric():
    with pytest.raises(FeedbackError, match="scored metrics: \\['judge'\\]"):
        agreement(_scores([1.0]), _labels([("e0", "v", "ann", True, None)]), "relevance")


def test_no_labels_yet_gives_an_honest_answer():
    empty = pd.DataFrame(columns=feedback.COLUMNS)
    result = agreement(_scores([1.0]), empty, "judge")
    assert result.n == 0 and math.isnan(result.kappa) and not result.trusted
    assert "record feedback" in result.verdict
