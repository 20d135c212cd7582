"""Everything checked before the first paid call: context windows, and what the run costs.

Context overflow must never be silent: a silently truncated context reads like a
hallucination and is hard to find. So the default policy stops the run before it starts,
naming the calls that do not fit; ``truncate`` shortens one named variable and records a
warning on each row it touched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from .errors import ContextWindowExceeded as ContextWindowError
from .errors import WorkbenchError
from .evaluation.evalsets import Example
from .gateway.cache import cache_key
from .gateway.pricing import has_price, price
from .gateway.send import gateway as litellm_gateway
from .prompts.templates import PromptTemplate
from .run_types import Call, Message, Plan, Variant

if TYPE_CHECKING:
    import pandas as pd

    from .gateway.client import Gateway

ContextPolicy = Literal["error", "truncate"]


class CostLimitError(WorkbenchError):
    """The run would cost more than the configured ``max_cost``."""


def plan_run(variants: Sequence[Variant], examples: Sequence[Example], gateway: Gateway, *,
             repeats: int = 1, policy: ContextPolicy = "error",
             truncate_variable: str | None = None, use_cache: bool = True,
             refresh: frozenset[str] = frozenset()) -> Plan:
    """Render every call, check it fits, and price the calls the cache cannot answer."""
    plan = Plan()
    overflows: list[str] = []
    rendered = {(v.name, e.id): v.prompt.render(**v.example(e).inputs)
                for v in variants for e in examples}
    keys = {(v.name, e.id): _keys(v, rendered[(v.name, e.id)], repeats)
            for v in variants for e in examples}
    cache = gateway.cache if use_cache else None
    if cache is not None:  # one read for the whole run; the runner then asks memory
        cache.prefetch(k for (name, _), ks in keys.items() if name not in refresh for k in ks)
    for variant in variants:
        window = gateway.context_window(variant.model)
        priced = has_price(variant.model)
        for example in examples:
            messages = rendered[(variant.name, example.id)]
            call = Call(messages, keys=keys[(variant.name, example.id)])
            cached_repeats = 0 if cache is None or variant.name in refresh else sum(
                cache.contains(key) for key in call.keys)
            plan.cached += cached_repeats
            uncached = repeats - cached_repeats
            if window is not None or (uncached and priced):
                call.prompt_tokens = gateway.count_tokens(variant.model, messages)
            if window is not None and uncached:
                try:
                    gateway.check_context(variant.model, messages)
                except ContextWindowError as exc:
                    if policy == "error" or truncate_variable is None:
                        overflows.append(f"{variant.name} / example {example.id}: {exc}")
                    else:
                        call = _truncate(variant, example, gateway, truncate_variable, window)
                        call.keys = _keys(variant, call.messages, repeats)
            plan.to_send += uncached
            if uncached:
                plan.estimated_cost += (uncached * _call_cost(variant, call.prompt_tokens or 0)
                                        if priced else math.nan)
            plan.calls[(variant.name, example.id)] = call
    if overflows:
        shown = "\n  ".join(overflows[:5])
        more = f"\n  ... and {len(overflows) - 5} more" if len(overflows) > 5 else ""
        raise ContextWindowError(
            f"{len(overflows)} call(s) do not fit the context window; nothing was sent:\n  "
            f"{shown}{more}\n  fix: shorten the prompt or the data, lower max_tokens, or set "
            "run.context_policy: truncate with run.truncate_variable: <field> to cut that "
            "field (each cut is recorded on its row)")
    return plan


def _keys(variant: Variant, messages: list[Message], repeats: int) -> list[str]:
    model = variant.model
    return [cache_key(model.model, model.params, messages, r, model.api_base)
            for r in range(repeats)]


def _call_cost(variant: Variant, prompt_tokens: int) -> float:
    completion = int(variant.model.params.get("max_tokens") or 256)
    return price(variant.model, prompt_tokens, completion, unknown=math.nan)


def _truncate(variant: Variant, example: Example, gateway: Gateway, name: str,
              window: int) -> Call:
    """Cut ``name`` to the longest prefix that fits (binary search on characters)."""
    example = variant.example(example)
    text = str(example.inputs.get(name, ""))
    if name not in variant.prompt.variables:
        raise ContextWindowError(
            f"{variant.name}: run.truncate_variable is {name!r}, which the prompt does not use; "
            f"it uses {sorted(variant.prompt.variables)}")

    def render(length: int) -> list[Message]:
        return variant.prompt.render(**{**example.inputs, name: text[:length]})

    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        try:
            gateway.check_context(variant.model, render(middle))
            low = middle
        except ContextWindowError:
            high = middle - 1
    messages = render(low)
    try:
        tokens = gateway.check_context(variant.model, messages)
    except ContextWindowError as exc:
        raise ContextWindowError(
            f"{variant.name} / example {example.id}: does not fit even with {name!r} empty: "
            f"{exc}") from exc
    warning = (f"context window {window}: {name!r} truncated from {len(text)} to {low} "
               f"characters")
    return Call(messages, tokens, warning)


def estimate(variants: Sequence[Variant], examples: Sequence[Example], repeats: int,
             prompts: Mapping[str, PromptTemplate] | None = None) -> pd.DataFrame:
    """Calls, prompt tokens and worst-case cost per variant (``Experiment.estimate``)."""
    import pandas as pd

    gateway = litellm_gateway()
    rows = []
    for v in variants:
        template = (prompts or {}).get(v.prompt_name, v.prompt)
        tokens = sum(gateway.count_tokens(v.model, template.render(**v.example(e).inputs))
                     for e in examples)
        calls = len(examples) * repeats
        max_out = int(v.model.params.get("max_tokens") or 0)
        cost = price(v.model, tokens * repeats, max_out * calls, unknown=math.nan)
        rows.append({"variant": v.name, "model": v.model.model, "calls": calls,
                     "prompt_tokens": tokens * repeats,
                     "prompt_tokens_per_call": tokens / max(1, len(examples)),
                     "max_completion_tokens": max_out * calls, "cost_max": cost})
    return pd.DataFrame(rows).set_index("variant")
