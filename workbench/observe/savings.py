"""Savings advice read from the ledger, each with its projected monthly saving.

* ``response_cache``: served requests asked again with the same model, parameters and
  messages (their fingerprint): a response cache would have answered the repeats, so the
  saving is what the repeats cost.
* ``max_tokens``: a served prompt version whose answers' p99 output tokens is far below its
  ``max_tokens`` cap, or has no cap: a cap at 1.25 x p99 bounds runaway answers; the saving
  is the output tokens above that cap at the model's output price.
* ``prompt_caching``: a prompt version whose fixed beginning (the text before its first
  variable) is most of each request's input and long enough for providers to cache, with
  no cached tokens reported: provider prompt caching bills those tokens at about half.
* ``downgrade``: an A/B run tagged with the request type (``workbench.request_type``) whose
  verdict says a cheaper model is non-inferior to the one serving it; without such a run
  nothing is proposed. The saving is the request type's cost at the cheaper model's prices.
* ``downgrade_ab``: a request type served by a model that a cheaper one the project already
  calls (seen in the window) could replace, with no such A/B: the A/B is offered, ready to
  write from the stored requests of that type (``offer``: the arguments of
  ``observe.ab_from_traffic``); when none are stored, the detail says what to turn on.

The window's figures are scaled to 30 days of the traffic the window saw.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any

from .record import since_ts

MONTH_S = 30 * 86400.0
MIN_REPEAT_SHARE = 0.05
CAP_HEADROOM = 1.25
MIN_CACHED_PREFIX_TOKENS = 1024  # the shortest prefix providers cache (OpenAI, Anthropic)
MIN_PREFIX_SHARE = 0.3
CACHED_INPUT_DISCOUNT = 0.5


@dataclass(frozen=True)
class Recommendation:
    """One piece of advice: ``kind`` for ``key`` would save ``monthly_savings_usd``."""

    kind: str
    key: str
    monthly_savings_usd: float
    detail: str
    evidence: str | None = None  # the MLflow run behind a downgrade
    offer: dict[str, str] | None = None  # ab_from_traffic's arguments for a downgrade_ab

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def recommend(store: Any, since: Any = "30d", *, tracking_uri: str | None = None,
              min_savings_usd: float = 0.0) -> list[Recommendation]:
    """Every recommendation the window supports, largest saving first."""
    calls = _calls(store, since)
    if calls.empty:
        return []
    span = max(calls["ts"].max() - max(since_ts(since), calls["ts"].min()), 3600.0)
    scale = MONTH_S / span
    backed = _downgrades(calls, scale, tracking_uri)
    found = [*_response_cache(calls, scale), *_max_tokens(calls, scale, tracking_uri),
             *_prompt_caching(calls, scale, tracking_uri), *backed,
             *_offers(calls, scale, {r.key for r in backed}, store)]
    found = [r for r in found if r.monthly_savings_usd >= min_savings_usd]
    return sorted(found, key=lambda r: -r.monthly_savings_usd)


def frame(found: list[Recommendation]) -> Any:
    import pandas as pd

    columns = ["kind", "key", "monthly_savings_usd", "detail", "evidence"]
    return pd.DataFrame([r.as_dict() for r in found], columns=columns)


def _calls(store: Any, since: Any) -> Any:
    """The window's successful calls that a model answered (not from a response cache)."""
    import pandas as pd
    import sqlalchemy as sa

    from .queries import _fetch

    c = store.calls.c
    names = ["ts", "request_id", "application", "request_type", "prompt", "prompt_version",
             "model",
             "tokens_in", "tokens_out", "tokens_cached", "cost", "fingerprint", "route"]
    query = sa.select(*(c[n] for n in names)).where(
        c.ts >= since_ts(since), c.status == "ok", c.cache_hit.is_not(True))
    return pd.DataFrame.from_records(_fetch(store, query), columns=names)


def _key(**parts: Any) -> str:
    return " ".join(f"{k}={v}" for k, v in parts.items() if v is not None and v == v)


def _response_cache(calls: Any, scale: float) -> list[Recommendation]:
    served = calls[calls["fingerprint"].notna()]
    out = []
    for (app, kind, prompt), group in served.groupby(
            ["application", "request_type", "prompt"], dropna=False):
        per = group.groupby("fingerprint")["cost"].agg(["size", "sum"])
        repeats = int((per["size"] - 1).sum())
        share = repeats / len(group)
        if repeats == 0 or share < MIN_REPEAT_SHARE:
            continue
        saved = float((per["sum"] * (per["size"] - 1) / per["size"]).sum()) * scale
        out.append(Recommendation(
            "response_cache", _key(application=app, request_type=kind, prompt=prompt), saved,
            f"{repeats} of {len(group)} requests ({share:.0%}) repeated an earlier one "
            f"exactly; a response cache would have answered them for nothing: about "
            f"${saved:,.2f} a month"))
    return out


def _registered(name: Any, version: Any, uri: str | None, cache: dict[Any, Any]) -> Any:
    """The registered prompt version (template, model config), or None when unreadable."""
    if name is None or version is None or version != version:
        return None
    key = (name, int(version))
    if key not in cache:
        from ..prompts.versions import client, load

        try:
            cache[key] = load(name, version=int(version), mlflow_client=client(uri))
        except Exception:  # a deleted version or another store: no advice from it
            cache[key] = None
    return cache[key]


def _unit_prices(model: Any) -> tuple[float, float] | None:
    """USD per input and per output token of a model config, or None when unknown."""
    from ..gateway.pricing import has_price, price

    if model is None or not has_price(model):
        return None
    return price(model, 1_000_000, 0) / 1e6, price(model, 0, 1_000_000) / 1e6


def _max_tokens(calls: Any, scale: float, uri: str | None) -> list[Recommendation]:
    import numpy as np

    cache: dict[Any, Any] = {}
    out = []
    for (prompt, version), group in calls.groupby(["prompt", "prompt_version"]):
        found = _registered(prompt, version, uri, cache)
        if found is None or found.model is None or len(group) < 20:
            continue
        cap = found.model.params.get("max_tokens")
        p99 = float(np.quantile(group["tokens_out"], 0.99))
        if p99 <= 0 or (cap is not None and cap < 2 * p99):
            continue
        proposed = math.ceil(p99 * CAP_HEADROOM)
        excess = int(np.clip(group["tokens_out"] - proposed, 0, None).sum())
        prices = _unit_prices(found.model)
        saved = excess * prices[1] * scale if prices else 0.0
        now = f"max_tokens is {cap}" if cap is not None else "there is no max_tokens cap"
        out.append(Recommendation(
            "max_tokens", _key(prompt=prompt, version=int(version)), saved,
            f"99% of its {len(group)} answers used at most {p99:.0f} output tokens and {now}; "
            f"max_tokens: {proposed} bounds runaway answers"
            + (f", saving about ${saved:,.2f} a month on the {excess} tokens above it"
               if prices else " (no price is known for its model, so no saving is given)")))
    return out


def _static_prefix(template: Any) -> str:
    """The text every request of a template starts with: up to its first variable."""
    marker = "\x00workbench-variable\x00"
    messages = template.render(**{name: marker for name in template.variables})
    text = "".join(str(m.get("content") or "") for m in messages)
    return text.split(marker, 1)[0]


def _prompt_caching(calls: Any, scale: float, uri: str | None) -> list[Recommendation]:
    cache: dict[Any, Any] = {}
    out = []
    for (prompt, version), group in calls.groupby(["prompt", "prompt_version"]):
        found = _registered(prompt, version, uri, cache)
        if found is None or found.model is None or group["tokens_cached"].fillna(0).sum() > 0:
            continue
        prefix = len(_static_prefix(found.template)) // 4  # about four characters a token
        share = prefix / max(float(group["tokens_in"].mean()), 1.0)
        if prefix < MIN_CACHED_PREFIX_TOKENS or share < MIN_PREFIX_SHARE:
            continue
        prices = _unit_prices(found.model)
        saved = (prefix * len(group) * prices[0] * CACHED_INPUT_DISCOUNT * scale
                 if prices else 0.0)
        out.append(Recommendation(
            "prompt_caching", _key(prompt=prompt, version=int(version)), saved,
            f"its fixed beginning is about {prefix} tokens, {min(share, 1):.0%} of the input "
            f"of its {len(group)} requests, and no provider cache was reported: put the fixed "
            "text first and enable the provider's prompt caching, or trim it; about "
            f"${saved:,.2f} a month"))
    return out


def _downgrades(calls: Any, scale: float, uri: str | None) -> list[Recommendation]:
    kinds = calls[calls["request_type"].notna() & calls["route"].isna()]
    if kinds.empty:
        return []
    from mlflow.tracking import MlflowClient

    from ..gateway.config import ModelConfig
    from ..gateway.routing import RoutingError, _report, _variant_models
    from ..settings import tracking_uri as default_uri

    uri = uri or default_uri()
    if uri.startswith("sqlite:///") and not os.path.exists(uri.removeprefix("sqlite:///")):
        return []  # no tracking store yet: no A/B, and none made just to look
    client = MlflowClient(uri)
    out = []
    for (kind, model), group in kinds.groupby(["request_type", "model"]):
        if "'" in kind:  # cannot be quoted in an MLflow filter; no run can be found for it
            continue
        try:
            ids = [e.experiment_id for e in client.search_experiments()]
            runs = client.search_runs(ids, filter_string="tags.`workbench.request_type` = "
                                      f"'{kind}'") if ids else []
        except Exception:  # no tracking store: no evidence, no proposal
            return out
        for run in runs:
            try:
                report, models = _report(client, run.info.run_id, ""), _variant_models(client,
                                                                                     run)
            except RoutingError:
                continue
            for pair in report.get("pairs", []):
                cheaper = models.get(pair.get("b"))
                if models.get(pair.get("a")) != model or not cheaper or not (
                        pair.get("non_inferior") or pair.get("winner") == pair.get("b")):
                    continue
                prices = _unit_prices(ModelConfig(model=cheaper))
                if prices is None:
                    continue
                then = (group["tokens_in"].sum() * prices[0]
                        + group["tokens_out"].sum() * prices[1])
                saved = (float(group["cost"].sum()) - then) * scale
                if saved > 0:
                    out.append(Recommendation(
                        "downgrade", _key(request_type=kind, model=model), saved,
                        f"A/B run {run.info.run_id}: {pair.get('verdict')}; routing "
                        f"{kind!r} requests to {cheaper} would save about ${saved:,.2f} a "
                        "month (a route rule citing this run as its evidence)",
                        evidence=run.info.run_id))
    return out


def _cost_at(group: Any, prices: tuple[float, float]) -> float:
    return float(group["tokens_in"].sum() * prices[0] + group["tokens_out"].sum() * prices[1])


def _offers(calls: Any, scale: float, backed: set[str], store: Any) -> list[Recommendation]:
    """Per served request type and model: the cheapest model seen in the window, offered as
    an A/B built from the stored requests, unless an A/B already backs a downgrade."""
    from ..gateway.config import ModelConfig
    from .abtest import TURN_ON, stored_requests

    served = calls[calls["fingerprint"].notna() & calls["request_type"].notna()
                   & calls["prompt"].notna() & calls["route"].isna()]
    if served.empty:
        return []
    prices = {m: p for m in calls["model"].dropna().unique()
              if (p := _unit_prices(ModelConfig(model=m))) is not None}
    stored = stored_requests(store, set(served["request_id"].dropna()))
    out = []
    for (kind, model, prompt), group in served.groupby(["request_type", "model", "prompt"]):
        if _key(request_type=kind, model=model) in backed or not prices.get(model):
            continue
        costs = {m: _cost_at(group, p) for m, p in prices.items() if m != model}
        cheaper = min(costs, key=costs.__getitem__, default=None)
        saved = (_cost_at(group, prices[model]) - costs[cheaper]) * scale if cheaper else 0.0
        if saved <= 0:
            continue
        kept = len(stored & set(group["request_id"]))
        head = (f"{len(group)} {kind!r} requests of {prompt} were served by {model} and no "
                f"A/B shows {cheaper} non-inferior on them; if it is, routing them there "
                f"saves about ${saved:,.2f} a month. ")
        offer = {"prompt": str(prompt), "request_type": str(kind), "cheaper_model": cheaper}
        out.append(Recommendation(
            "downgrade_ab", _key(request_type=kind, model=model, prompt=prompt), saved,
            head + (f"observe.ab_from_traffic({prompt!r}, {kind!r}, {cheaper!r}) writes the "
                    f"A/B from the {kept} stored requests; run it and cite its run in a route "
                    "rule" if kept else f"None of them is stored, so no A/B can be built from "
                    f"them; fix: {TURN_ON}"),
            offer=offer if kept else None))
    return out
