"""The Annotate tab: labels shown and editable, carried over to identical re-runs, progress,
keyboard shortcuts and the least-certain-first queue."""

from __future__ import annotations

import pytest

from workbench import Experiment
from workbench.evaluation import feedback

ui = pytest.importorskip("workbench.ui")


@pytest.fixture
def bench(make_experiment):
    bench = ui.Workbench(Experiment.from_yaml(make_experiment()), annotator="ann")
    bench.run.run_button.click()
    bench.run.wait(timeout=60)
    assert bench.session.results is not None, bench.run.status.value
    return bench


def test_a_saved_label_shows_again_and_can_be_changed(bench):
    annotate = bench.annotate
    annotate.variant.value = "guided"
    assert "0 of 20 labelled" in annotate.progress.value
    first = annotate.example.value
    annotate.thumbs.value, annotate.score.value = False, 2
    annotate.comment.value = "too blunt"
    annotate.save_button.click()
    assert annotate.example.value != first
    assert "1 of 20 labelled" in annotate.progress.value and "1 by you" in annotate.progress.value
    assert dict(annotate.example.options)[f"{first}  ✓"] == first
    assert annotate.thumbs.value is None  # the next example has no label yet

    annotate.example.value = first
    assert (annotate.thumbs.value, annotate.score.value, annotate.comment.value) == (
        False, 2, "too blunt")
    assert "<b>ann</b>: bad, score 2, “too blunt”" in annotate.existing.value
    annotate.thumbs.value = True
    annotate.save_button.click()
    labels = feedback.load(bench.session.results.run_ids["parent"])
    assert list(labels["thumbs"]) == [False, True]  # appended; the latest counts
    annotate.example.value = first
    assert annotate.thumbs.value is True
    assert "1 of 20 labelled" in annotate.progress.value


def test_another_annotator_sees_the_label_but_starts_with_an_empty_form(bench):
    annotate = bench.annotate
    first = annotate.example.value
    annotate.thumbs.value = True
    annotate.save_button.click()
    annotate.annotator.value = "bob"
    annotate.example.value = first
    assert annotate.thumbs.value is None and "<b>ann</b>: good" in annotate.existing.value
    assert "0 by you" in annotate.progress.value


def test_labels_carry_over_to_a_rerun_with_identical_outputs(bench):
    annotate = bench.annotate
    annotate.variant.value = "guided"
    first = annotate.example.value
    annotate.thumbs.value = True
    annotate.save_button.click()
    experiment = bench.session.experiment
    bench.session.results = experiment.run(progress=False, log_again=True)
    annotate.variant.value = "guided"
    assert "1 of 20 labelled" in annotate.progress.value
    assert "1 carried over from earlier runs" in annotate.progress.value
    annotate.example.value = first
    assert annotate.thumbs.value is True
    assert "from an earlier run, identical output" in annotate.existing.value


def test_keyboard_shortcuts_rate_save_and_move(bench):
    annotate = bench.annotate
    ids = [value for _, value in annotate.example.options]
    annotate.shortcuts.value = "g"
    assert annotate.thumbs.value is True and annotate.shortcuts.value == ""
    annotate.shortcuts.value = "4"
    annotate.shortcuts.value = "s"
    assert annotate.example.value == ids[1]
    annotate.shortcuts.value = "n"
    assert annotate.example.value == ids[2]
    annotate.shortcuts.value = "p"
    annotate.shortcuts.value = "p"
    assert annotate.example.value == ids[0]
    assert (annotate.thumbs.value, annotate.score.value) == (True, 4)
    recorded = feedback.load(bench.session.results.run_ids["parent"])
    assert recorded[["example_id", "thumbs", "score"]].values.tolist() == [[ids[0], True, 4]]


def test_the_queue_starts_where_a_person_disagrees_with_the_judge(bench):
    annotate = bench.annotate
    annotate.variant.value = "bare"
    annotate.metric.value = "exact_match"
    frame = bench.session.results.frame
    bare = frame[frame["variant"] == "bare"]
    passed = list(bare[bare["score.exact_match"] == 1]["example_id"])
    annotate.annotator.value = "bob"  # bob finds an answer bad that the judge passed
    annotate.example.value = passed[3]
    annotate.thumbs.value = False
    annotate.save_button.click()

    annotate.annotator.value = "ann"
    annotate.order.value = "least certain first"
    ids = [value for _, value in annotate.example.options]
    assert ids[0] == passed[3] and annotate.example.value == passed[3]
    assert "least certain first" in annotate.view.value
    assert "<b>bob</b>: bad" in annotate.existing.value
