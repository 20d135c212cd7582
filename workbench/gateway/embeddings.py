"""Embedding calls through the gateway: litellm's embedding API with the same cache,
retries, error mapping, pricing and usage records as completions.

The cache holds one entry per (model, parameters, endpoint, text), so re-embedding a corpus
after a few documents changed pays only for the new texts. Vectors are cached as base64 of
their float32 bytes, a quarter of the size of JSON numbers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..canonical import canonical_json
from ..errors import ProviderError, Unauthorized
from ..observe import hook
from .config import ModelConfig, _litellm_params
from .pricing import _litellm, _price_for_litellm, price

FORMAT_VERSION = 1
BATCH = 128  # texts per request: providers cap a request's inputs (OpenAI at 2,048)


@dataclass(frozen=True)
class Embeddings:
    """Vectors of a batch of texts (one row each) and what they cost.

    The fields a usage record reads are those of a ``Completion``: an embedding has prompt
    tokens only, and those count the texts sent (a provider reports them per request, not
    per text, so vectors from the cache carry none).
    """

    vectors: np.ndarray
    model: str
    prompt_tokens: int
    cost: float
    latency_s: float
    cached: bool = False
    retries: int = 0
    completion_tokens: int = 0
    fallback: bool = False
    cached_tokens: int | None = None


def embedding_key(config: ModelConfig, text: str) -> str:
    """The cache key of one text's vector: model, parameters, endpoint and text; no key."""
    payload = {"request": "embedding", "model": config.model, "params": config.params,
               "api_base": config.api_base, "input": text, "v": FORMAT_VERSION}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


async def embed(gateway: Any, config: ModelConfig, texts: Sequence[str], *,
                use_cache: bool = True) -> Embeddings:
    """Vectors of ``texts``: cached ones from the cache, the rest from the model in batches.

    Recorded in the usage ledger with request type ``embedding`` (inside ``attribute`` as
    its other names say, else on its own).
    """
    if config.fallbacks:
        raise ProviderError(f"{config.model}: an embedding model cannot have fallbacks; "
                            "another model's vectors live in another space", model=config.model)
    check_key(config)
    names = {"request_type": "embedding"}
    scope = hook.relabel(**names) if hook.request_type() else hook.attribute(**names)
    with scope:
        return await _recorded_embed(gateway, config, list(texts), use_cache=use_cache)


def check_key(config: ModelConfig) -> None:
    """A missing key is an error before any call: the variable ``api_key_env`` names, else
    (a hosted provider, no ``api_base``) the one litellm reads for the provider."""
    if config.api_key_env or config.api_base:
        config.api_key()
        return
    missing = _litellm(config).validate_environment(config.model).get("missing_keys") or []
    if missing:
        raise Unauthorized(
            f"embedding model {config.model!r} needs the environment variable "
            f"{' and '.join(missing)} (set it in the shell or a .env file, or name another "
            "variable with api_key_env)", model=config.model)


@hook.recorded
async def _recorded_embed(gateway: Any, config: ModelConfig, texts: list[str], *,
                          use_cache: bool) -> Embeddings:
    cache = gateway.cache
    keys = [embedding_key(config, t) for t in texts]
    rows: dict[int, np.ndarray] = {}
    if cache is not None and use_cache:
        for i, key in enumerate(keys):
            hit = cache.get(key)
            if hit is not None:
                rows[i] = _decode(hit["vector"])
    missing = [i for i in range(len(texts)) if i not in rows]
    tokens, cost, latency, retries = 0, 0.0, 0.0, 0
    for start in range(0, len(missing), BATCH):
        batch = missing[start:start + BATCH]
        got = await _paced_call(gateway, config, [texts[i] for i in batch])
        tokens, cost = tokens + got.prompt_tokens, cost + got.cost
        latency, retries = latency + got.latency_s, retries + got.retries
        for i, vector in zip(batch, got.vectors, strict=True):
            rows[i] = vector
            if cache is not None:
                cache.put(keys[i], config.model, {"vector": _encode(vector)})
    width = max((len(v) for v in rows.values()), default=0)
    vectors = np.zeros((len(texts), width), dtype=np.float32)
    for i, vector in rows.items():
        vectors[i] = vector
    return Embeddings(vectors=vectors, model=config.model, prompt_tokens=tokens, cost=cost,
                      latency_s=latency, cached=not missing, retries=retries)


async def _paced_call(gateway: Any, config: ModelConfig, texts: list[str]) -> Embeddings:
    pacing = gateway._pacing_for(config)
    if pacing.requests:
        await pacing.requests.acquire()
    async with pacing.concurrency.slot():
        return await _call(config, texts)


async def _call(config: ModelConfig, texts: list[str]) -> Embeddings:
    from .failures import _headers, _retryable, mapped

    litellm = _litellm(config)
    _price_for_litellm(litellm, config)
    request = {**_litellm_params(config), **config.params, "input": texts}
    started, retries = time.perf_counter(), 0
    while True:
        try:
            response = await litellm.aembedding(**request)
            break
        except Exception as exc:
            if retries >= config.num_retries or not _retryable(exc):
                raise mapped(exc, config, retries) from exc
            wait = litellm.utils.calculate_retry_after(
                config.num_retries - retries, config.num_retries, _headers(exc), min_timeout=0)
        await asyncio.sleep(wait)
        retries += 1
    latency = time.perf_counter() - started
    vectors = _vectors(response, len(texts), config)
    usage = getattr(response, "usage", None)
    tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    return Embeddings(vectors=vectors, model=config.model, prompt_tokens=tokens,
                      cost=price(config, tokens, 0, response), latency_s=latency,
                      retries=retries)


def _vectors(response: Any, count: int, config: ModelConfig) -> np.ndarray:
    data = getattr(response, "data", None) or []
    items = [d if isinstance(d, Mapping) else vars(d) for d in data]
    if len(items) != count:
        raise ProviderError(f"{config.model}: asked for {count} embeddings, the response has "
                            f"{len(items)}", model=config.model)
    ordered = sorted(items, key=lambda d: d.get("index", 0))
    try:
        return np.asarray([d["embedding"] for d in ordered], dtype=np.float32)
    except (KeyError, ValueError, TypeError) as exc:
        raise ProviderError(f"{config.model}: unreadable embeddings in the response ({exc})",
                            model=config.model) from exc


def _encode(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def _decode(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)


def cached_vectors(cache: Any, config: ModelConfig, texts: Sequence[str]) -> np.ndarray | None:
    """The cached vectors of ``texts`` when every one is cached, else None; calls nothing."""
    if cache is None:
        return None
    found = [cache.get(embedding_key(config, t)) for t in texts]
    if any(hit is None for hit in found):
        return None
    return np.stack([_decode(hit["vector"]) for hit in found])
