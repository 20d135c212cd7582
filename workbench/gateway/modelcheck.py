"""Model strings and call parameters, checked offline before the first paid call.

A model litellm cannot route fails only when it is called, and ``temperature: hot`` only
after every call has been sent and refused; both are found here from litellm's own
offline provider list and the OpenAI parameter set, with no network.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import SpecError
from .config import ModelConfig


def _number(v: Any, low: float | None = None, high: float | None = None) -> bool:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    return (low is None or v >= low) and (high is None or v <= high)


def _whole(v: Any, low: int | None = None) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and (low is None or v >= low)


def _texts(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, list) and bool(v)
                                  and all(isinstance(x, str) for x in v))


# the OpenAI parameters litellm maps for every provider: what each must be
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "temperature": (lambda v: _number(v, 0), "a number >= 0"),
    "top_p": (lambda v: _number(v, 0, 1), "a number between 0 and 1"),
    "min_p": (lambda v: _number(v, 0, 1), "a number between 0 and 1"),
    "presence_penalty": (_number, "a number"),
    "frequency_penalty": (_number, "a number"),
    "repeat_penalty": (lambda v: _number(v, 0), "a number >= 0"),
    "max_tokens": (lambda v: _whole(v, 1), "a whole number >= 1"),
    "max_completion_tokens": (lambda v: _whole(v, 1), "a whole number >= 1"),
    "n": (lambda v: _whole(v, 1), "a whole number >= 1"),
    "top_k": (lambda v: _whole(v, 1), "a whole number >= 1"),
    "seed": (_whole, "a whole number"),
    "top_logprobs": (lambda v: _whole(v, 0), "a whole number >= 0"),
    "logprobs": (lambda v: isinstance(v, bool), "true or false"),
    "parallel_tool_calls": (lambda v: isinstance(v, bool), "true or false"),
    "stop": (_texts, "a text or a list of texts"),
    "response_format": (lambda v: isinstance(v, dict), "a mapping"),
    "logit_bias": (lambda v: isinstance(v, dict), "a mapping"),
    "extra_body": (lambda v: isinstance(v, dict), "a mapping"),
    "extra_headers": (lambda v: isinstance(v, dict), "a mapping"),
}
# the runner reads whole answers: a streamed response would not be one
_SET_BY_WORKBENCH = {"stream", "model", "messages"}


def check_models(where: str | Path, configs: dict[str, ModelConfig | None]) -> None:
    """Each config (field -> config) names a model litellm can route and well-typed params."""
    for field, config in configs.items():
        if config is None:
            continue
        for place, one in _with_fallbacks(field, config):
            _check_model(where, place, one)
            _check_params(where, place, one)


def _with_fallbacks(field: str, config: ModelConfig) -> Iterator[tuple[str, ModelConfig]]:
    yield field, config
    for i, fallback in enumerate(config.fallbacks):
        yield from _with_fallbacks(f"{field}.fallbacks.{i}", fallback)


def _check_model(where: str | Path, field: str, config: ModelConfig) -> None:
    model = config.model
    if model.startswith("local/"):
        from ..errors import GatewayError
        from .local_model import embedded_models, weights_path

        name = model.split("/", 1)[1]
        if name not in embedded_models():
            raise SpecError(where, f"{field}.model", f"{model!r}: no embedded model {name!r}",
                            f"use one of {[f'local/{m}' for m in embedded_models()]}")
        try:
            weights_path(name)  # finds the installed file; loads nothing
        except GatewayError as exc:
            problem, _, fix = str(exc).partition("; run ")
            raise SpecError(where, f"{field}.model", f"{model!r}: {problem}",
                            f"run {fix}" if fix else "") from exc
        return
    import litellm

    litellm.suppress_debug_info = True  # no banner printed for the probe below
    try:
        litellm.get_llm_provider(model=model, api_base=config.api_base,
                                 custom_llm_provider=config.params.get("custom_llm_provider"))
        return
    except Exception:  # litellm raises BadRequestError (and others) for an unroutable name
        pass
    from .local_model import embedded_models

    providers = sorted({str(getattr(p, "value", p)) for p in litellm.provider_list} | {"local"})
    if "/" in model:
        prefix = model.split("/", 1)[0]
        close = difflib.get_close_matches(prefix, providers, n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}/`?" if close else \
            "use a litellm provider prefix (https://docs.litellm.ai/docs/providers)"
        if config.api_base and not close:  # a self-hosted server speaking OpenAI's protocol
            hint = f"for an OpenAI-compatible server at api_base write `openai/{model}`"
        raise SpecError(where, f"{field}.model",
                        f"{model!r}: unknown provider prefix {prefix!r}", hint)
    known = [m for m in litellm.model_cost if "/" not in m]
    close = [f"local/{model}"] if model in embedded_models() else \
        difflib.get_close_matches(model, known, n=1, cutoff=0.75)
    hint = f"did you mean `{close[0]}`? Otherwise " if close else ""
    raise SpecError(where, f"{field}.model",
                    f"{model!r}: litellm cannot tell which provider serves this model",
                    f"{hint}write it with its provider, e.g. `openai/{model}` or "
                    f"`anthropic/{model}` (an OpenAI-compatible server: `openai/<name>` "
                    "with api_base)")


def _check_params(where: str | Path, field: str, config: ModelConfig) -> None:
    for name, value in config.params.items():
        place = f"{field}.params.{name}"
        if name in _SET_BY_WORKBENCH:
            raise SpecError(where, place, "is set by the workbench for every call", "remove it")
        if name in _RULES:
            valid, want = _RULES[name]
            if not valid(value):
                raise SpecError(where, place, f"{value!r} is not {want}", f"give {name} {want}")
            continue
        close = difflib.get_close_matches(name, sorted(_RULES), n=1, cutoff=0.8)
        if close:
            raise SpecError(where, place, "is not a parameter litellm knows",
                            f"did you mean `{close[0]}`?")


def model_configs(spec: Any, scorers: list[Any]) -> dict[str, ModelConfig | None]:
    """Every model an experiment will call: variants, the judge, scorers' own models."""
    configs: dict[str, ModelConfig | None] = {
        f"models.{name}": config for name, config in spec.models.items()}
    configs["judge"] = spec.judge
    for i, scorer in enumerate(scorers):
        options = getattr(scorer, "options", None)
        for option in ("model", "judge"):
            value = getattr(options, option, None)
            if isinstance(value, ModelConfig):
                configs[f"scorers.{i}.{option}"] = value
    return configs


def calling_scorers(scorers: list[Any]) -> int:
    """Scorers that call a model of their own (LLM judges): one call per new answer each."""
    return sum(any(isinstance(getattr(getattr(s, "options", None), option, None), ModelConfig)
                   for option in ("model", "judge")) for s in scorers)
