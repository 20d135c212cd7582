"""Any provider's embedding model through litellm, called through the workbench gateway.

The gateway gives it the response cache (one entry per model and text, so a rebuild pays
only for new chunks), retries, the error tree with keys scrubbed, pricing and usage records
(request type ``embedding``). Nothing is fitted: the model is the provider's.

The probe sentences are always sent to the model, never read from the cache: they are what
catches a model changed behind the same name. When they differ from the cached probes, the
cached vectors came from another model, so the build bypasses the cache.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from .errors import RagError
from .probes import PROBES, _fingerprint, same_vectors

log = logging.getLogger("workbench.rag")
_CACHES: dict[Path, Any] = {}
_LOOP: asyncio.AbstractEventLoop | None = None
_LOOP_LOCK = threading.Lock()
T = TypeVar("T")


class LiteLLMEmbedder:
    """A hosted (or self-hosted, OpenAI-compatible) embedding model, cosine-scored.

    Configured as a model is (``ModelConfig``): ``model`` is a litellm model string
    (``openai/text-embedding-3-small``), ``api_key_env`` names the environment variable
    holding the key (never the key itself), ``params`` go to every call (e.g.
    ``dimensions``). ``gateway`` defaults to one over the project's response cache.
    """

    kind: ClassVar[str] = "litellm"

    def __init__(self, *, gateway: Any = None, **config: Any) -> None:
        from pydantic import ValidationError

        from ..gateway.config import ModelConfig

        try:
            self.config = ModelConfig(**config)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}"
                                 for e in exc.errors())
            raise RagError(f"embedder {config.get('model')!r}: {problems} (the embedder "
                           "takes a model configuration: model, api_base, api_key_env, "
                           "params, input_cost_per_token, ...)") from exc
        if self.config.fallbacks:
            raise RagError(f"embedder {self.config.model!r}: fallbacks are not allowed; "
                           "another model's vectors live in another space")
        self.fitted_on = ""
        self._gateway = gateway
        self._probes: np.ndarray | None = None
        self._use_cache = True

    def __repr__(self) -> str:
        return f"LiteLLMEmbedder(model={self.config.model!r})"

    def params(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json", exclude_defaults=True)

    @property
    def gateway(self) -> Any:
        if self._gateway is None:
            from ..gateway.cache import ResponseCache
            from ..gateway.client import Gateway
            from ..settings import cache_path

            path = cache_path().resolve()
            if path not in _CACHES:  # one writer per cache file in this process
                _CACHES[path] = ResponseCache(path)
            self._gateway = Gateway(_CACHES[path])
        return self._gateway

    def fit(self, texts: Sequence[str]) -> None:
        """Check the key and the model: probes sent now, compared with cached ones."""
        from ..gateway.embeddings import cached_vectors, check_key

        check_key(self.config)
        cached = cached_vectors(self.gateway.cache, self.config, PROBES)
        fresh = self.probe_vectors()
        if cached is not None and not same_vectors(_unit(cached), fresh):
            log.warning("%s answers the probe sentences differently from its cached vectors: "
                        "the model changed, so this build re-embeds without the cache",
                        self.config.model)
            self._use_cache = False

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, use_cache=self._use_cache)

    embed_queries = embed

    def _embed(self, texts: Sequence[str], *, use_cache: bool) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        got = _on_loop(self.gateway.embed(self.config, texts, use_cache=use_cache))
        return _unit(got.vectors)

    def probe_vectors(self) -> np.ndarray:
        if self._probes is None:
            self._probes = self._embed(PROBES, use_cache=False)
        return self._probes

    def fingerprint(self) -> str:
        return _fingerprint(self.kind, self.params(), self.fitted_on, self.probe_vectors())

    def save(self, folder: Path) -> None:
        """Nothing to store: the manifest's parameters name the model."""

    @classmethod
    def load(cls, folder: Path, params: Mapping[str, Any], fitted_on: str) -> LiteLLMEmbedder:
        return cls(**params)


def from_spec(spec: str | Mapping[str, Any]) -> LiteLLMEmbedder | None:
    """The embedder a spec names when it names a litellm model (``provider/model`` or a
    mapping with ``model``), else None."""
    if isinstance(spec, str):
        return LiteLLMEmbedder(model=spec) if "/" in spec else None
    options = dict(spec)
    if options.get("kind", "litellm") != "litellm" or "model" not in options:
        return None
    options.pop("kind", None)
    return LiteLLMEmbedder(**options)


def _on_loop(call: Coroutine[Any, Any, T]) -> T:
    """Run ``call`` on one long-lived loop thread, from any thread (a notebook's too).

    litellm binds its connection pool and per-call logging tasks to the loop they started
    on; a new loop per embedding call would strand them.
    """
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None:
            _LOOP = asyncio.new_event_loop()
            threading.Thread(target=_LOOP.run_forever, name="workbench-embed",
                             daemon=True).start()
    future = asyncio.run_coroutine_threadsafe(call, _LOOP)
    try:
        return future.result()
    except BaseException:
        future.cancel()  # an interrupt stops the call too; no-op once it has finished
        raise


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)
