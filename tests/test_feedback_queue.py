"""Which outputs to label next, and labels that carry over to re-runs with identical outputs."""

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from workbench import Experiment
from workbench.evaluation import feedback
from workbench.evaluation.feedback import FeedbackError
from workbench.evaluation.queue import queue

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _frame(rows):
    return pd.DataFrame([{"example_id": e, "variant": "v", "score.judge": j, "score.other": o}
                         for e, j, o in rows])


def _labels(rows):
    return pd.DataFrame([{"example_id": e, "variant": "v", "annotator": who, "thumbs": t,
                          "score": None, "comment": None, "at": T0 + timedelta(minutes=i)}
                         for i, (e, who, t) in enumerate(rows)], columns=feedback.COLUMNS)


def test_the_queue_puts_uncertain_and_disputed_rows_first_and_labelled_ones_last():
    frame = _frame([("sure", 1.0, 1.0), ("labelled", 0.5, 0.0), ("a_person_disagrees", 0.0, 0.0),
                    ("at_the_cut", 0.5, 1.0), ("scorers_disagree", 1.0, 0.0)])
    labels = _labels([("a_person_disagrees", "bob", True), ("labelled", "ann", False)])
    order = queue(frame, labels, "judge", annotator="ann")
    assert list(order["example_id"]) == ["at_the_cut", "scorers_disagree",
                                         "a_person_disagrees", "sure", "labelled"]
    first = order.iloc[0]
    assert first["uncertainty"] == 1.0 and not first["labelled"]
    disputed = order.set_index("example_id").loc["a_person_disagrees"]
    assert disputed["disagreement"] == 0.5 and "bob says good" in disputed["why"]
    assert order.iloc[-1]["labelled"]


def test_repeats_that_split_make_a_binary_judge_uncertain():
    frame = _frame([("split", 1.0, 1.0), ("split", 0.0, 1.0), ("steady", 1.0, 1.0),
                    ("steady", 1.0, 1.0)])
    order = queue(frame, _labels([]), "judge")
    assert list(order["example_id"]) == ["split", "steady"]
    assert order.iloc[0]["uncertainty"] == 1.0 and order.iloc[1]["uncertainty"] == 0.0


def test_a_one_to_five_judge_is_cut_at_the_pass_score():
    frame = pd.DataFrame({"example_id": ["low", "mid", "high"], "variant": "v",
                          "score.judge": [1.0, 4.0, 5.0]})
    order = queue(frame, _labels([]), "judge")
    assert order.set_index("example_id")["uncertainty"].to_dict() == {
        "mid": 1.0, "high": pytest.approx(0.0), "low": pytest.approx(0.0)}


def test_a_failed_call_goes_last_and_an_unknown_metric_is_named():
    frame = _frame([("failed", None, None), ("ok", 0.5, 1.0)])
    order = queue(frame, _labels([]), "judge")
    assert list(order["example_id"]) == ["ok", "failed"]
    assert order.iloc[-1]["why"].startswith("no judge score")
    with pytest.raises(FeedbackError, match="scored metrics: \\['judge', 'other'\\]"):
        queue(frame, _labels([]), "judgement")


def test_labels_carry_over_to_a_rerun_with_identical_outputs(make_experiment):
    experiment = Experiment.from_yaml(make_experiment())
    first = experiment.run(progress=False)
    row = first.frame[(first.frame["variant"] == "guided")].iloc[0]
    feedback.record(first.run_ids["parent"], row["example_id"], annotator="ann", thumbs=True,
                    variant="guided", output=row["output"])
    feedback.record(first.run_ids["parent"], "t002", annotator="ann", thumbs=False,
                    variant="guided", output="an answer the re-run did not give")

    again = experiment.run(progress=False, log_again=True)
    assert again.run_ids["parent"] != first.run_ids["parent"]
    labels = feedback.for_results(again)
    # the label follows the identical output to the new run; the other one does not
    assert labels[["example_id", "variant", "annotator", "thumbs", "carried"]].values.tolist() \
        == [[row["example_id"], "guided", "ann", True, True]]
    assert len(feedback.load(again.run_ids["parent"])) == 0  # nothing was copied in MLflow
    own = feedback.for_results(first)
    assert list(own["carried"]) == [False, False]
