"""Experiment files: every mistake is caught at load time, naming file, field and fix."""

import pytest
import yaml

from workbench import Experiment
from workbench.errors import SpecError
from workbench.spec import load_spec


def edit(folder, **changes):
    path = folder / "experiment.yaml"
    spec = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if value is None:
            spec.pop(key)
        else:
            spec[key] = value
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def test_a_valid_experiment_loads_with_its_variants(make_experiment):
    experiment = Experiment.from_yaml(make_experiment())
    assert [v.name for v in experiment.variants] == ["bare", "guided"]
    assert experiment.metrics == {"exact_match": "binary", "contains": "binary"}
    assert len(experiment.evalset) == 20
    assert experiment.spec.templates["guided"].is_chat


def test_variants_are_named_by_what_varies(make_experiment):
    folder = make_experiment()
    spec = yaml.safe_load((folder / "experiment.yaml").read_text())
    fake = spec["models"]["fake"]
    edit(folder, models={"small": fake, "large": {**fake, "model": "openai/test-model-2"}},
         baseline="bare.small")
    names = [v.name for v in Experiment.from_yaml(folder).variants]
    assert names == ["bare.small", "bare.large", "guided.small", "guided.large"]


@pytest.mark.parametrize(
    ("changes", "field", "text"),
    [
        ({"temperature": 0.3}, "temperature", "Extra inputs are not permitted"),
        ({"name": None}, "name", "Field required"),
        ({"primary_metric": "f1"}, "primary_metric", "'f1' is not a scorer"),
        ({"baseline": "nope"}, "baseline", "'nope' is not a variant"),
        ({"scorers": [{"type": "regex", "pattern": "("}]}, "scorers.0", "invalid regular"),
        ({"scorers": [{"type": "vibes"}]}, "scorers.0", "unknown scorer type"),
        ({"scorers": [{"type": "contains", "value": "a"}, {"type": "contains", "value": "b"}]},
         "scorers", "two scorers are named"),
        ({"prompts": {"bare": "prompts/missing.yaml"}}, "prompts.bare", "not found"),
        ({"eval_set": {"path": "data/nope.jsonl"}}, "eval_set.path", "not found"),
        ({"run": {"concurrency": 0}}, "run.concurrency", "greater than or equal to 1"),
        ({"name": "has space"}, "name", "not a valid prompt name"),
    ],
)
def test_mistakes_name_the_field(make_experiment, changes, field, text):
    folder = edit(make_experiment(), **changes)
    with pytest.raises(SpecError) as caught:
        load_spec(folder)
    error = caught.value
    assert error.field == field and text in str(error)
    assert str(folder / "experiment.yaml") in str(error)


def test_a_literal_key_in_the_file_is_refused(make_experiment):
    folder = make_experiment()
    spec = yaml.safe_load((folder / "experiment.yaml").read_text())
    spec["models"]["fake"]["params"]["api_key"] = "sk-live-123"
    (folder / "experiment.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError, match="api_key_env") as caught:
        load_spec(folder)
    assert caught.value.field == "models.fake.params"


def test_a_template_variable_missing_from_the_eval_set_is_caught_before_any_call(
        make_experiment, llm_server):
    folder = make_experiment(prompts={"p": {"template": "{{ticket}} from {{customer}}"}},
                             baseline="p")
    with pytest.raises(SpecError, match=r"uses \['customer'\]") as caught:
        Experiment.from_yaml(folder)
    assert caught.value.field == "prompts.p" and "add the field" in str(caught.value)
    assert llm_server.request_count == 0


def test_a_bad_prompt_file_names_that_file(make_experiment):
    folder = make_experiment(prompts={"p": {"text": "hello"}}, baseline="p")
    with pytest.raises(SpecError, match="needs `template:`") as caught:
        load_spec(folder)
    assert caught.value.file.endswith("p.yaml")


def test_invalid_yaml_is_reported(tmp_path):
    (tmp_path / "experiment.yaml").write_text("name: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(tmp_path)


def test_a_missing_experiment_says_what_to_pass(tmp_path):
    with pytest.raises(SpecError, match="experiment.yaml"):
        load_spec(tmp_path / "nowhere")
