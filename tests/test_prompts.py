"""Prompt templates: the MLflow placeholder syntax, rendered without executing anything."""

import pytest

from workbench.errors import TemplateError
from workbench.prompts.templates import VARIABLE_PATTERN, PromptTemplate


def test_the_placeholder_pattern_is_mlflows_own():
    from mlflow.prompt.constants import PROMPT_TEMPLATE_VARIABLE_PATTERN

    assert VARIABLE_PATTERN.pattern == PROMPT_TEMPLATE_VARIABLE_PATTERN.pattern


@pytest.mark.parametrize(
    ("template", "variables"),
    [
        ("Hello {{name}}", {"name"}),
        ("{{ a }} and {{b}} and {{a}}", {"a", "b"}),
        ("no placeholders, {single} braces", set()),
        ([{"role": "system", "content": "Be {{tone}}"},
          {"role": "user", "content": "{{question}}"}], {"tone", "question"}),
    ],
)
def test_variables_are_found_in_text_and_chat_templates(template, variables):
    assert PromptTemplate(template).variables == variables


def test_a_text_template_renders_to_one_user_message():
    prompt = PromptTemplate("Classify: {{ticket}}")
    assert prompt.render(ticket="refund please") == [
        {"role": "user", "content": "Classify: refund please"}
    ]


def test_a_chat_template_keeps_its_roles():
    prompt = PromptTemplate([{"role": "system", "content": "Answer in {{lang}}"},
                             {"role": "user", "content": "{{q}}"}])
    assert prompt.format(lang="French", q="Hi") == [
        {"role": "system", "content": "Answer in French"}, {"role": "user", "content": "Hi"}]


def test_rendering_is_substitution_not_evaluation():
    prompt = PromptTemplate("{{x}}")
    payload = "{{ 7*7 }} {% for i in range(3) %}"
    assert prompt.format(x=payload) == payload


def test_jinja_blocks_are_refused():
    with pytest.raises(TemplateError, match="Jinja blocks"):
        PromptTemplate("{% for x in items %}{{x}}{% endfor %}")


def test_a_missing_variable_names_what_is_needed():
    with pytest.raises(TemplateError, match=r"needs \['ticket'\]"):
        PromptTemplate("{{ticket}}", name="p").render(other="x")


@pytest.mark.parametrize("bad", [[], [{"role": "user"}], [{"role": "robot", "content": "x"}], 3])
def test_malformed_templates_are_refused(bad):
    with pytest.raises(TemplateError):
        PromptTemplate(bad)


def test_the_content_hash_changes_with_the_text_only():
    a = PromptTemplate("Hi {{x}}", name="a")
    assert a.content_hash == PromptTemplate("Hi {{x}}", name="b").content_hash
    assert a.content_hash != PromptTemplate("Hi  {{x}}").content_hash


def test_diff_shows_the_changed_lines():
    diff = PromptTemplate("one\ntwo", name="v1").diff(PromptTemplate("one\nthree", name="v2"))
    assert "-two" in diff and "+three" in diff and "--- v1" in diff


def test_a_template_round_trips_through_mlflows_formatter():
    from mlflow.entities.model_registry import PromptVersion

    chat = [{"role": "system", "content": "Be {{ tone }}"}, {"role": "user", "content": "{{q}}"}]
    ours = PromptTemplate(chat).format(tone="brief", q="why?")
    theirs = PromptVersion("p", 1, chat).format(tone="brief", q="why?")
    assert ours == theirs


@pytest.mark.parametrize("text", ["x^{{2}} + {{ticket}}", 'Return {{"label": "..."}} for {{t}}',
                                  "{{}} and {{ }} {{t}}"])
def test_double_braces_that_do_not_start_like_a_name_stay_text(text):
    prompt = PromptTemplate(text)
    assert len(prompt.variables) == 1
    assert "{{" in prompt.format(ticket="a", t="b")


@pytest.mark.parametrize("text", ["{{x[0]}}", "{{ x | upper }}", "{{ x() }}", "{{x}",
                                  "{{ user.name[0] }}"])
def test_text_that_starts_like_a_placeholder_but_is_not_one_is_refused(text):
    with pytest.raises(TemplateError, match="sent literally"):
        PromptTemplate(text)
