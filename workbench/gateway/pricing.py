"""Prices of model calls: a config's own prices, else litellm's model table.

litellm is loaded here on first use (with the embedded model registered as a provider).
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

from .config import ModelConfig
from .scrub import guard_logs

log = logging.getLogger("workbench.gateway")


def _litellm(config: ModelConfig) -> Any:
    import litellm

    litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banner per error
    guard_logs(config)  # its Router logs provider errors, which may quote the key
    if any(c.model.startswith("local/") for c in (config, *config.fallbacks)):
        from .local_model import register_with_litellm

        register_with_litellm()
    return litellm


def _model_info(config: ModelConfig) -> dict[str, Any]:
    _litellm(config)
    return _model_table_entry(config.model)


@functools.lru_cache(maxsize=256)
def _model_table_entry(model: str) -> dict[str, Any]:
    import litellm

    try:
        return dict(litellm.get_model_info(model))
    except Exception:  # not in litellm's table
        return {}


_unpriced: set[str] = set()
# model -> whether litellm's own table priced it before the gateway first called it
_in_litellm_table: dict[str, bool] = {}
_price_lock = threading.Lock()


def _price_for_litellm(litellm: Any, config: ModelConfig) -> None:
    """Give litellm a price for each model its table lacks, once per process.

    litellm prices every response it returns. For a model missing from its table it first
    searches the table for a near match, on every call, at a good share of the call's
    CPU. Self-hosted and OpenAI-compatible local
    models are all missing. The entry registered is the config's own prices, else zero; a
    zero entry does not make the model priced for the workbench (``has_price`` stays false,
    the cost is still reported as unknown).
    """
    for c in (config, *config.fallbacks):
        if c.model in _in_litellm_table or c.model.startswith("local/"):
            continue
        with _price_lock:
            if c.model in _in_litellm_table:
                continue
            known = _model_table_entry(c.model).get("input_cost_per_token") is not None
            if not known:
                entry = {"input_cost_per_token": c.input_cost_per_token or 0.0,
                         "output_cost_per_token": c.output_cost_per_token or 0.0,
                         "litellm_provider": c.provider, "mode": "chat"}
                litellm.register_model({c.model: entry})
            _in_litellm_table[c.model] = known


def has_price(config: ModelConfig) -> bool:
    """Whether a cost can be computed for this model (its own prices or litellm's table)."""
    if config.input_cost_per_token is not None or config.output_cost_per_token is not None:
        return True
    if _in_litellm_table.get(config.model) is False:  # the entry above is not a price
        return False
    return bool(_model_info(config).get("input_cost_per_token") is not None)


def price(config: ModelConfig, prompt_tokens: int, completion_tokens: int,
          response: Any = None, *, unknown: float = 0.0) -> float:
    """USD for a call: the config's own prices, else litellm's table, else ``unknown``.

    Recorded costs of unpriced models count as 0 (with one warning per model) so totals
    stay usable; estimates pass ``unknown=nan`` so nobody mistakes them for free.
    """
    if config.input_cost_per_token is not None or config.output_cost_per_token is not None:
        return (prompt_tokens * (config.input_cost_per_token or 0.0)
                + completion_tokens * (config.output_cost_per_token or 0.0))
    if not has_price(config):
        if unknown == 0 and config.model not in _unpriced:  # a recorded cost, not an estimate
            _unpriced.add(config.model)
            log.warning("no price known for %s: its cost is counted as 0; set "
                        "input_cost_per_token and output_cost_per_token in its config",
                        config.model)
        return unknown
    litellm = _litellm(config)
    if response is not None:
        known = (getattr(response, "_hidden_params", None) or {}).get("response_cost")
        if known is not None:  # litellm has priced this response already
            return float(known)
        return float(litellm.completion_cost(completion_response=response) or 0.0)
    prompt_cost, completion_cost = litellm.cost_per_token(
        model=config.model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    return float(prompt_cost + completion_cost)

