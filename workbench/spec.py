"""Experiment files: YAML in, typed objects out, or an error naming file, field and fix.

Everything that can be checked without a model call is checked here, so a mistake costs
nothing: unknown fields, prompt files, scorer options, the primary metric, secrets in files.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import SpecError, TemplateError, WorkbenchError
from .files import inside, load_yaml, read_text
from .gateway.config import ModelConfig
from .prompts.templates import PromptTemplate
from .rag.retriever_spec import RetrieverSpec, metric_names

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EvalSetSpec(_Strict):
    path: str
    id_field: str | None = None
    limit: int | None = Field(default=None, gt=0)
    # which split of a `datasets` folder holding a DatasetDict (save_to_disk)
    split: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _path_alone(cls, data: Any) -> Any:
        return {"path": data} if isinstance(data, str) else data  # eval_set: data/x.jsonl


class RunSpec(_Strict):
    concurrency: int = Field(default=4, ge=1, le=512)
    repeats: int = Field(default=1, ge=1, le=100)
    # processes making calls (litellm's CPU per call caps one process at a few hundred/s)
    workers: int = Field(default=1, ge=1, le=64)
    # stop before the first call when the estimate is higher, and mid-run when spent
    max_cost: float | None = Field(default=None, gt=0)
    # what to do when a prompt does not fit the model's context window
    context_policy: Literal["error", "truncate"] = "error"
    truncate_variable: str | None = None
    # an MLflow span per call (tokens, cost, latency, prompt version), linked to the run
    trace: bool = True
    # also one MLflow trace per call with its scores and expected values, for MLflow's
    # evaluation and trace views (costs store writes: see benchmarks/RESULTS.md)
    trace_calls: bool = False
    # replace personal data (emails, phones, cards, ...) in what is logged to MLflow
    redact_pii: bool = False

    @model_validator(mode="after")
    def _truncate_needs_a_variable(self) -> RunSpec:
        if self.context_policy == "truncate" and not self.truncate_variable:
            raise ValueError("context_policy truncate needs truncate_variable: <field to cut>")
        return self


def check_run_options(**options: float | None) -> None:
    """A zero or negative count would be read as "use the default" or crash mid-run."""
    for name, value in options.items():
        if value is None:
            continue
        if name == "max_cost":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
            want = "a number of dollars > 0"
        else:
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
            want = "a whole number >= 1"
        if not ok:
            raise WorkbenchError(f"{name}={value!r}: must be {want}\n  fix: give {name} "
                                 f"{want}, or leave it out to use the experiment's setting")


class GateSpec(_Strict):
    """``workbench check``: where to test a candidate and what counts as a regression."""

    regression_set: EvalSetSpec | None = None  # default: the experiment's eval set
    guardrails: list[str] = Field(default_factory=list)  # must not get significantly worse
    thresholds: dict[str, float] = Field(default_factory=dict)  # candidate mean must reach
    alpha: float = Field(default=0.05, gt=0, lt=1)
    max_error_rate: float = Field(default=0.1, ge=0, le=1)


class ScorerSpec(BaseModel):
    """``type`` picks a registered scorer; every other key is one of its options."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str
    name: str | None = None

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def metric(self) -> str:
        return self.name or self.type


class ExperimentSpec(_Strict):
    """The validated content of ``experiment.yaml``; prompt paths are resolved to templates."""

    name: str
    description: str = ""
    registry_name: str | None = None
    eval_set: EvalSetSpec
    prompts: dict[str, str | list[dict[str, str]]]
    models: dict[str, ModelConfig]
    scorers: list[ScorerSpec] = Field(min_length=1)
    primary_metric: str | None = None
    baseline: str | None = None
    # how much worse on the primary metric a candidate may be and still count as
    # non-inferior: the verdict a route to a cheaper model cites as its evidence
    non_inferiority_margin: float | None = Field(default=None, gt=0)
    # the served request type the eval set stands for: tags the run, for routing evidence
    request_type: str | None = Field(default=None, min_length=1, pattern=r"^[^'\"`]+$")
    run: RunSpec = Field(default_factory=RunSpec)
    judge: ModelConfig | None = None  # default model of the LLM-judge scorers
    gate: GateSpec = Field(default_factory=GateSpec)
    # retrieval variants: the matrix becomes retrievers x prompts x models
    retrievers: dict[str, RetrieverSpec] = Field(default_factory=dict)

    # set by load_spec, not by the file
    path: Path | None = Field(default=None, exclude=True)
    templates: dict[str, PromptTemplate] = Field(default_factory=dict, exclude=True)

    @property
    def directory(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    @property
    def prompt_registry_name(self) -> str:
        return self.registry_name or self.name

    @property
    def primary(self) -> str:
        return self.primary_metric or self.scorers[0].metric


_FIXES = {
    "extra_forbidden": "remove it (or check its spelling)",
    "missing": "add it",
    "string_type": "give a text value",
    "int_type": "give a whole number",
    "int_parsing": "give a whole number",
    "float_parsing": "give a number",
    "greater_than": "give a larger value",
    "greater_than_equal": "give a larger value",
    "less_than_equal": "give a smaller value",
    "too_short": "add at least one entry",
    "float_type": "give a number",
    "bool_type": "give true or false",
    "bool_parsing": "give true or false",
    "dict_type": "give a mapping (key: value lines, indented under this key)",
    "model_type": "give a mapping (key: value lines, indented under this key)",
    "list_type": "give a list (lines starting with '- ')",
    "literal_error": "use one of the values named above",
    "string_pattern_mismatch": "leave out quote characters",
}


_SECTIONS: dict[str, type[BaseModel]] = {
    "eval_set": EvalSetSpec, "regression_set": EvalSetSpec, "run": RunSpec, "gate": GateSpec,
    "judge": ModelConfig, "fallbacks": ModelConfig}


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read ``experiment.yaml`` (or the directory holding it) and validate all of it."""
    path = Path(path)
    if path.is_dir():
        path = path / "experiment.yaml"
    if not path.is_file():
        raise SpecError(path, "", "file not found",
                        "pass an experiment directory containing experiment.yaml")
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise SpecError(path, "", "the file must be a YAML mapping (name:, prompts:, ...)")
    try:
        spec = ExperimentSpec.model_validate(raw)
    except ValidationError as exc:
        # an unknown key first: a misspelt one also makes the right one "missing"
        first = min(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        loc = tuple(str(p) for p in first["loc"])
        fix = _FIXES.get(first["type"], "")
        if first["type"] == "extra_forbidden":
            fix = _did_you_mean(loc, fix)
        more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
        raise SpecError(path, ".".join(loc), first["msg"] + more, fix) from exc
    return _check(spec.model_copy(update={"path": path}), path)


def _did_you_mean(loc: tuple[str, ...], fix: str) -> str:
    """For an unknown key, the allowed key it is closest to (a typo costs nothing)."""
    parts = [p for p in loc[:-1] if not p.isdigit()]
    if not parts:
        model: type[BaseModel] | None = ExperimentSpec
    elif parts[0] == "models" and len(parts) == 2:
        model = ModelConfig
    elif parts[0] == "retrievers" and len(parts) == 2:
        model = RetrieverSpec
    else:
        model = _SECTIONS.get(parts[-1])
    if model is None:
        return fix
    allowed = [f for f in model.model_fields if f not in ("path", "templates")]
    close = difflib.get_close_matches(loc[-1], allowed, n=1, cutoff=0.6)
    if close:
        return f"did you mean `{close[0]}`? (allowed: {', '.join(allowed)})"
    return f"remove it; allowed here: {', '.join(allowed)}"


def _check(spec: ExperimentSpec, path: Path) -> ExperimentSpec:
    if not _NAME.match(spec.prompt_registry_name):
        raise SpecError(path, "registry_name" if spec.registry_name else "name",
                        f"{spec.prompt_registry_name!r} is not a valid prompt name",
                        "use letters, digits, '-', '_' and '.' only")
    if not spec.prompts:
        raise SpecError(path, "prompts", "no prompt variants", "add at least one prompt")
    if not spec.models:
        raise SpecError(path, "models", "no model variants",
                        "add one, e.g. `smollm2: {model: local/smollm2}`")
    for group in ("prompts", "models", "retrievers"):
        for key in getattr(spec, group):
            if not _NAME.match(key):
                raise SpecError(path, f"{group}.{key}", "invalid variant name",
                                "use letters, digits, '-', '_' and '.' only")
    templates = {name: _load_prompt(spec, path, name, value)
                 for name, value in spec.prompts.items()}

    from .evaluation.scorers import build_scorer  # lazy: scorers pull in optional libraries

    if spec.judge is not None:
        from .evaluation.scorers.judges import judge_defaults

        with_judge = judge_defaults([s.model_dump() for s in spec.scorers], spec.judge)
        spec = spec.model_copy(update={"scorers": [ScorerSpec.model_validate(s)
                                                    for s in with_judge]})
    metrics = []
    for i, scorer in enumerate(spec.scorers):
        try:
            build_scorer(scorer.type, scorer.options, name=scorer.name)
        except Exception as exc:
            raise SpecError(path, f"scorers.{i}", str(exc), _scorer_fix(scorer)) from exc
        metrics.append(scorer.metric)
    metrics += metric_names(spec)
    duplicated = sorted({m for m in metrics if metrics.count(m) > 1})
    if duplicated:
        raise SpecError(path, "scorers", f"two scorers are named {duplicated}",
                        "give each scorer of the same type its own `name:`")
    if spec.primary not in metrics:
        raise SpecError(path, "primary_metric", f"{spec.primary!r} is not a scorer",
                        f"use one of {metrics}")
    for i, metric in enumerate([*spec.gate.guardrails, *spec.gate.thresholds]):
        if metric not in metrics:
            field = "gate.guardrails" if i < len(spec.gate.guardrails) else "gate.thresholds"
            raise SpecError(path, field, f"{metric!r} is not a scorer", f"use one of {metrics}")
    variant_names = _variant_names(spec)
    check_variant_names(spec, path)
    if spec.non_inferiority_margin is not None and len(variant_names) < 2:
        raise SpecError(path, "non_inferiority_margin", "a margin needs two or more variants "
                        f"to compare, and there is one ({variant_names[0]!r})",
                        "add the candidate (a second model or prompt), or remove the margin")
    if spec.baseline is not None and spec.baseline not in variant_names:
        raise SpecError(path, "baseline", f"{spec.baseline!r} is not a variant",
                        f"use one of {variant_names}")
    data = spec.directory / spec.eval_set.path
    if not data.exists():
        raise SpecError(path, "eval_set.path", f"{data} not found",
                        "give a path relative to the experiment directory")
    return spec.model_copy(update={"templates": templates})


def _scorer_fix(scorer: ScorerSpec) -> str:
    """The type or option the user probably meant, else where the options are listed."""
    from .evaluation.scorers import registered_types

    types = registered_types()
    if scorer.type not in types:
        wrong, allowed = scorer.type, sorted(types)
    else:
        opts = getattr(types[scorer.type], "Opts", None)
        allowed = sorted(opts.model_fields) if opts is not None else []
        unknown = [k for k in scorer.options if k not in allowed]
        wrong = unknown[0] if unknown else ""
    close = difflib.get_close_matches(wrong, allowed, n=1, cutoff=0.6) if wrong else []
    hint = f"did you mean `{close[0]}`? " if close else ""
    return f"{hint}see docs/scorers.md for the types and their options"


_PATH_LIKE = re.compile(r"^[^\s{}]+(/[^\s{}]*|\.[A-Za-z0-9]{1,5})$")


def _load_prompt(spec: ExperimentSpec, path: Path, name: str,
                 value: str | list[dict[str, str]]) -> PromptTemplate:
    field = f"prompts.{name}"
    where, description = path, ""
    # one word with a slash or a file suffix is a path, never prompt text
    if isinstance(value, str) and _PATH_LIKE.match(value.strip()):
        file = _prompt_file(spec, path, field, value.strip())
        where = file
        if file.suffix in (".yaml", ".yml"):
            value, description, field = _prompt_yaml(file)
        else:
            value, field = read_text(file), ""
    try:
        return PromptTemplate(value, name=name, description=description)  # type: ignore[arg-type]
    except TemplateError as exc:
        problem, _, fix = str(exc).partition("\n  fix: ")
        raise SpecError(where, field, problem, fix) from exc


def _prompt_file(spec: ExperimentSpec, path: Path, field: str, value: str) -> Path:
    """The prompt file, which must exist inside the experiment's directory: whatever it
    holds is sent to the provider and stored in the registry."""
    file = inside(spec.directory, value)
    if file is None:
        raise SpecError(path, field, f"{value!r} is outside the experiment directory "
                        f"{spec.directory}",
                        "copy the prompt into the experiment directory (e.g. prompts/) "
                        "and give a path relative to it")
    if not file.is_file():
        problem = "is a directory" if file.is_dir() else "not found"
        raise SpecError(path, field, f"prompt file {spec.directory / value} {problem}",
                        "give the path of a prompt file relative to the experiment directory "
                        "(e.g. prompts/<name>.yaml); inline text needs spaces or a newline")
    return file


def _prompt_yaml(file: Path) -> tuple[Any, str, str]:
    content = load_yaml(file)
    if not isinstance(content, dict) or not ({"template", "messages"} & content.keys()):
        raise SpecError(file, "", "a prompt file needs `template:` (text) or "
                        "`messages:` (chat)", "see experiments/support-triage/prompts/")
    unknown = sorted(set(content) - {"template", "messages", "description"})
    if unknown:
        raise SpecError(file, unknown[0], "unknown field",
                        "allowed: template, messages, description")
    if {"template", "messages"} <= content.keys():
        raise SpecError(file, "messages", "both `template:` and `messages:` are given",
                        "keep one: `template:` for text, `messages:` for chat")
    value = content.get("messages", content.get("template"))
    field = "messages" if "messages" in content else "template"
    return value, str(content.get("description", "")), field


def check_variant_names(spec: ExperimentSpec, path: Path | str) -> None:
    """Two (prompt, model) pairs with one joined name would have their rows merged."""
    seen: dict[str, tuple[str, str]] = {}
    for r in spec.retrievers or [None]:
        for p in spec.prompts:
            for m in spec.models:
                name = variant_name(p, m, spec, r)
                if name in seen:
                    first = seen[name]
                    raise SpecError(path, "prompts", f"prompt {first[0]!r} on model "
                                    f"{first[1]!r} and prompt {p!r} on model {m!r} are both "
                                    f"named {name!r}; their results would be merged",
                                    "rename a prompt or a model so that no name joined with "
                                    "'.' repeats (e.g. avoid '.' in variant names)")
                seen[name] = (p, m)


def _variant_names(spec: ExperimentSpec) -> list[str]:
    return [variant_name(p, m, spec, r) for r in spec.retrievers or [None]
            for p in spec.prompts for m in spec.models]


def variant_name(prompt: str, model: str, spec: ExperimentSpec,
                 retriever: str | None = None) -> str:
    """Name variants by what varies: the retriever, the prompt, the model, or several."""
    if retriever is not None and len(spec.retrievers) > 1:
        rest = [n for n, group in ((prompt, spec.prompts), (model, spec.models))
                if len(group) > 1]
        return ".".join([retriever, *rest])
    if len(spec.models) == 1:
        return prompt
    if len(spec.prompts) == 1:
        return model
    return f"{prompt}.{model}"

