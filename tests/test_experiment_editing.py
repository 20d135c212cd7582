"""Pricing and editing an experiment from Python: what the notebook panels call."""

import math

import pytest
import yaml

from workbench import Experiment, ModelConfig, PromptTemplate
from workbench.errors import SpecError, TemplateError


def test_estimate_counts_calls_and_tokens_per_variant(make_experiment):
    exp = Experiment.from_yaml(make_experiment())
    estimate = exp.estimate(limit=4, repeats=2)
    assert list(estimate.index) == ["bare", "guided"]
    assert estimate["calls"].tolist() == [8, 8]
    assert estimate.loc["bare", "max_completion_tokens"] == 8 * 8  # max_tokens x calls
    # the guided prompt carries a system message, so it costs more prompt tokens
    assert estimate.loc["guided", "prompt_tokens"] > estimate.loc["bare", "prompt_tokens"]
    assert math.isnan(estimate.loc["bare", "cost_max"])  # a test model has no known price


def test_estimate_prices_known_models_and_unsaved_edits(make_experiment):
    folder = make_experiment(models={"mini": {"model": "gpt-4o-mini",
                                              "params": {"max_tokens": 10}}})
    exp = Experiment.from_yaml(folder)
    plain = exp.estimate(limit=2)
    assert (plain["cost_max"] > 0).all()
    longer = PromptTemplate("Please read carefully and classify: {{ticket}} " * 5)
    edited = exp.estimate(limit=2, prompts={"bare": longer})
    assert edited.loc["bare", "prompt_tokens"] > plain.loc["bare", "prompt_tokens"]
    assert edited.loc["guided", "prompt_tokens"] == plain.loc["guided", "prompt_tokens"]


def test_with_models_renames_variants_and_keeps_the_baseline_prompt(make_experiment):
    exp = Experiment.from_yaml(make_experiment())
    fake = exp.spec.models["fake"]
    two = exp.with_models({"fake": fake, "warm": fake.model_copy(
        update={"params": {"temperature": 0.7, "max_tokens": 8}})})
    assert [v.name for v in two.variants] == ["bare.fake", "bare.warm", "guided.fake",
                                              "guided.warm"]
    assert two.spec.baseline == "bare.fake"
    assert two.evalset is exp.evalset
    assert [v.name for v in exp.variants] == ["bare", "guided"]  # the original is unchanged


def test_with_models_rejects_an_empty_choice(make_experiment):
    exp = Experiment.from_yaml(make_experiment())
    with pytest.raises(SpecError, match="no model variants"):
        exp.with_models({})
    with pytest.raises(SpecError, match="invalid variant name"):
        exp.with_models({"two words": ModelConfig(model="local/smollm2")})


def test_save_prompt_writes_the_file_and_keeps_comments(make_experiment):
    folder = make_experiment()
    spec_file = folder / "experiment.yaml"
    spec_file.write_text("# why this experiment exists\n" + spec_file.read_text())
    exp = Experiment.from_yaml(folder)
    saved = exp.save_prompt("polite", "Kindly classify:\n\n{{ticket}}", description="polite")
    assert [v.name for v in saved.variants] == ["bare", "guided", "polite"]
    assert spec_file.read_text().startswith("# why this experiment exists")
    written = yaml.safe_load((folder / "prompts" / "polite.yaml").read_text())
    assert written == {"description": "polite", "template": "Kindly classify:\n\n{{ticket}}"}
    assert "|" in (folder / "prompts" / "polite.yaml").read_text()  # a readable block
    reloaded = Experiment.from_yaml(folder)
    assert reloaded.spec.templates["polite"].template == "Kindly classify:\n\n{{ticket}}"


def test_save_prompt_keeps_chat_messages(make_experiment):
    exp = Experiment.from_yaml(make_experiment())
    messages = [{"role": "system", "content": "One word."}, {"role": "user",
                                                              "content": "{{ticket}}"}]
    saved = exp.save_prompt("terse", messages)
    assert saved.spec.templates["terse"].template == messages


@pytest.mark.parametrize(("name", "template", "error", "match"), [
    ("bare", "{{ticket}}", SpecError, "exists"),
    ("two words", "{{ticket}}", SpecError, "invalid variant name"),
    ("fresh", "{{customer}}", SpecError, "customer"),
    ("fresh", "{% if x %}", TemplateError, "Jinja"),
])
def test_save_prompt_refuses_before_writing(make_experiment, name, template, error, match):
    folder = make_experiment()
    before = (folder / "experiment.yaml").read_text()
    with pytest.raises(error, match=match):
        Experiment.from_yaml(folder).save_prompt(name, template)
    assert (folder / "experiment.yaml").read_text() == before
    assert not (folder / "prompts" / "fresh.yaml").exists()
