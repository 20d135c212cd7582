"""Streamed answers through the gateway, with the pacing, retries, fallbacks and pricing of
``Gateway.complete``, so a served stream is limited and accounted for like any other call.

A fallback is tried only while nothing has been yielded: text from one model cannot be
continued by another, so a failure after the first piece is raised to the reader.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ..errors import GatewayError, RateLimited
from .config import Completion, ModelConfig
from .pricing import _litellm, price

Messages = list[dict[str, str]]
# one model's stream, opened with that model's retries: (litellm's stream, retries made)
Opener = Callable[[ModelConfig, Messages], Awaitable[tuple[Any, int]]]


class CompletionStream:
    """One streamed answer: ``async for piece in stream`` (once), then ``completion``.

    ``first_piece_at`` is the ``time.perf_counter()`` of the first text, for the time to
    first token. Made by ``Gateway.stream``.
    """

    def __init__(self, config: ModelConfig, messages: Messages, *,
                 pacing: Callable[[ModelConfig], Any], open_one: Opener,
                 mapped: Callable[..., GatewayError],
                 estimate_tokens: Callable[[ModelConfig, Messages], int]) -> None:
        self.config, self.messages = config, messages
        self._pacing, self._open_one, self._mapped = pacing, open_one, mapped
        self._estimate_tokens = estimate_tokens
        self._iterated = False
        self.completion: Completion | None = None
        self.first_piece_at: float | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        if self._iterated:
            raise RuntimeError("a CompletionStream can be iterated once")
        self._iterated = True
        return self._paced()

    async def _paced(self) -> AsyncIterator[str]:
        """Wait for rpm/tpm capacity and a slot of the model, held while the stream is read."""
        pacing = self._pacing(self.config)
        if pacing.requests:
            await pacing.requests.acquire()
        if pacing.tokens:
            await pacing.tokens.acquire(self._estimate_tokens(self.config, self.messages))
        async with pacing.concurrency.slot(), contextlib.aclosing(self._pieces()) as pieces:
            try:
                async for piece in pieces:
                    yield piece
            except RateLimited:
                pacing.concurrency.rate_limited()
                raise
        pacing.concurrency.succeeded()

    async def _pieces(self) -> AsyncIterator[str]:
        started = time.perf_counter()
        answered, chunks, rest, retries = await self._first_piece()
        try:
            for piece in [_text(c) for c in chunks]:
                if piece:
                    yield piece
            async for chunk in rest:
                chunks.append(chunk)
                piece = _text(chunk)
                if piece:
                    yield piece
        except GatewayError:
            raise
        except Exception as exc:
            raise self._mapped(exc, answered) from exc
        finally:  # a reader that stops early must not leave the connection open
            await _close(rest)
        self.completion = _completion(answered, self.config, chunks, self.messages,
                                      time.perf_counter() - started, retries)

    async def _first_piece(self) -> tuple[ModelConfig, list[Any], AsyncIterator[Any], int]:
        """The first model of the chain whose stream gives text (or ends): the model, the
        chunks read so far, the rest of its stream and its retries."""
        failure: GatewayError | None = None
        for config in (self.config, *self.config.fallbacks):
            chunks: list[Any] = []
            rest: Any = None
            try:
                response, retries = await self._open_one(config, self.messages)
                rest = aiter(response)
                while not any(_text(c) for c in chunks):
                    try:
                        chunks.append(await anext(rest))
                    except StopAsyncIteration:
                        break
            except Exception as exc:
                await _close(rest)
                error = self._mapped(exc, config)
                if error is not exc:
                    error.__cause__ = exc
                failure = error
                continue
            except BaseException:  # cancelled while waiting: its connection goes too
                await _close(rest)
                raise
            if chunks and _text(chunks[-1]):
                self.first_piece_at = time.perf_counter()
            return config, chunks, rest, retries
        assert failure is not None
        raise failure


async def _close(stream: Any) -> None:
    with contextlib.suppress(Exception):
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


def _text(chunk: Any) -> str | None:
    choices = getattr(chunk, "choices", None) or []
    delta = getattr(choices[0], "delta", None) if choices else None
    return getattr(delta, "content", None) if delta is not None else None


def _completion(answered: ModelConfig, primary: ModelConfig, chunks: list[Any],
                messages: Messages, latency: float, retries: int) -> Completion:
    """The finished stream as a ``Completion``: usage from the stream's last chunk (or
    counted by litellm when the provider sent none), priced as ``complete`` prices."""
    usage = next((c.usage for c in reversed(chunks) if getattr(c, "usage", None)), None)
    built = _assembled(answered, chunks, messages)
    if usage is None and built is not None:
        usage = getattr(built, "usage", None)
    prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    return Completion(
        text="".join(_text(c) or "" for c in chunks), model=answered.model,
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
        cost=price(answered, prompt_tokens, completion_tokens, built),
        latency_s=latency, retries=retries, fallback=answered is not primary)


def _assembled(config: ModelConfig, chunks: list[Any], messages: Messages) -> Any:
    """The chunks as one response, which litellm can price; None if it cannot build one."""
    try:
        return _litellm(config).stream_chunk_builder(chunks, messages=messages)
    except Exception:  # a provider's odd chunks: priced from the token counts instead
        return None
