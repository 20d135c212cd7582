"""The Prompts tab: update or revert a variant, and a warning above Run while edits are unsaved."""

from __future__ import annotations

import pytest
import yaml

from workbench import Experiment

ui = pytest.importorskip("workbench.ui")


@pytest.fixture
def bench(make_experiment):
    return ui.Workbench(Experiment.from_yaml(make_experiment()))


def test_unsaved_edits_are_named_above_the_run_tab(bench):
    prompts = bench.prompts
    assert prompts.unsaved == [] and bench.unsaved_warning.value == ""
    assert prompts.update_buttons["bare"].disabled and prompts.revert_buttons["bare"].disabled
    prompts.editors["bare"].value = "Mood of: {{ticket}}"
    assert prompts.unsaved == ["bare"]
    warning = bench.unsaved_warning.value
    assert "Unsaved edits in the Prompts tab (<b>bare</b>)" in warning
    assert "a run uses the saved prompt, not the edits" in warning
    assert bench.unsaved_warning in bench.tabs.children[bench.TITLES.index("Run")].children
    assert not prompts.update_buttons["bare"].disabled


def test_update_writes_the_file_and_the_next_run_uses_it(bench, llm_server):
    prompts = bench.prompts
    file = bench.session.experiment.spec.directory / "prompts" / "bare.yaml"
    prompts.editors["bare"].value = "Mood of: {{ticket}}"
    prompts.update_buttons["bare"].click()
    assert "Updated prompts/bare.yaml: the next run uses it" in prompts.card_status["bare"].value
    assert yaml.safe_load(file.read_text()) == {"template": "Mood of: {{ticket}}"}
    assert bench.session.experiment.spec.templates["bare"].template == "Mood of: {{ticket}}"
    assert prompts.unsaved == [] and bench.unsaved_warning.value == ""
    assert "edited, not saved" not in prompts.headers["bare"].value

    bench.run.track.value = False
    bench.run.limit.value = 2
    bench.run.run_button.click()
    bench.run.wait(timeout=60)
    sent = [str(r["messages"]) for r in llm_server.requests]
    assert any("Mood of: I love this app" in s for s in sent), sent[:2]


def test_update_keeps_the_scorers_added_in_the_notebook(make_experiment):
    from workbench.evaluation.scorers import build_scorer

    exp = Experiment.from_yaml(make_experiment())
    length = build_scorer("length", {"max_words": 50}, name="length")
    bench = ui.Workbench(Experiment(exp.spec, extra_scorers=[length]))
    bench.prompts.editors["bare"].value = "Mood of: {{ticket}}"
    bench.prompts.update_buttons["bare"].click()
    assert "Updated prompts/bare.yaml" in bench.prompts.card_status["bare"].value
    assert length in bench.session.experiment.scorers
    assert bench.session.experiment.spec.templates["bare"].template == "Mood of: {{ticket}}"


def test_update_keeps_a_chat_prompt_and_its_description(bench):
    prompts = bench.prompts
    directory = bench.session.experiment.spec.directory
    file = directory / "prompts" / "guided.yaml"
    file.write_text(yaml.safe_dump({"description": "the careful one",
                                    **yaml.safe_load(file.read_text())}))
    bench.session.experiment = Experiment.from_yaml(directory)
    prompts.editors["guided"].value = (
        "[system]\nOne word: positive or negative.\n[user]\n{{ticket}}")
    prompts.update_buttons["guided"].click()
    assert yaml.safe_load(file.read_text()) == {
        "description": "the careful one",
        "messages": [{"role": "system", "content": "One word: positive or negative."},
                     {"role": "user", "content": "{{ticket}}"}]}


def test_an_update_the_eval_set_cannot_fill_is_refused_next_to_its_button(bench):
    prompts = bench.prompts
    file = bench.session.experiment.spec.directory / "prompts" / "bare.yaml"
    before = file.read_text()
    prompts.editors["bare"].value = "{{ticket}} from {{customer}}"
    prompts.update_buttons["bare"].click()
    status = prompts.card_status["bare"].value
    assert "wb-error" in status and "Could not update bare" in status and "customer" in status
    assert file.read_text() == before and prompts.unsaved == ["bare"]


def test_revert_drops_the_edits(bench):
    prompts = bench.prompts
    prompts.editors["bare"].value = "Mood of: {{ticket}}"
    prompts.revert_buttons["bare"].click()
    assert prompts.editors["bare"].value == "Sentiment of: {{ticket}}"
    assert prompts.unsaved == [] and bench.unsaved_warning.value == ""
    assert "Reverted" in prompts.card_status["bare"].value
