"""One streamed answer of a ``PromptService``: its pieces, then its reply and ledger record.

It sees the service only through :class:`Streaming`, so it never imports the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

from ..aio import iterate_sync
from ..errors import GatewayError
from ..gateway.config import ModelConfig
from ..observe.hook import fingerprint
from ..prompts.versions import RegisteredPrompt
from .concurrency import ConcurrencyLimiter, Saturated
from .reply import Reply, Served, log_failure, log_reply, make_reply, record_call


class Streaming(Served, Protocol):
    """What a stream uses of its service: the gateway, and the call slots of a limit."""

    limiter: ConcurrencyLimiter | None
    _gateway: Any

    def _slot(self, model: ModelConfig) -> contextlib.AbstractAsyncContextManager[Any]: ...


class ReplyStream:
    """One streamed answer: iterate it once (sync or async); ``reply`` is set at the end."""

    def __init__(self, service: Streaming, prompt: RegisteredPrompt, model: ModelConfig,
                 messages: list[dict[str, str]], tags: dict[str, str]) -> None:
        self._service, self._prompt, self._model = service, prompt, model
        self._messages, self._tags = messages, tags
        self.route: str | None = None  # the route rule that chose the model, if any
        self.sources: tuple[str, ...] = ()  # documents retrieved into {{context}}
        self._started = False
        self.reply: Reply | None = None
        self.steps: dict[str, float] = {}  # for the usage ledger: render, call, total

    @property
    def version(self) -> int:
        return self._prompt.version

    def __aiter__(self) -> AsyncIterator[str]:
        if self._started:
            raise RuntimeError("a ReplyStream can be iterated once")
        self._started = True
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[str]:
        service, model = self._service, self._model
        started = time.perf_counter()
        stream = service._gateway.stream(model, self._messages)
        try:
            async with service._slot(model):
                if service.limiter is not None:  # the wait for a slot: its own step
                    self.steps["queue"] = time.perf_counter() - started
                    started = time.perf_counter()
                async with contextlib.aclosing(aiter(stream)) as pieces:  # closed if left
                    async for piece in pieces:
                        yield piece
        except Saturated as exc:  # refused before any call, like a spent budget
            record_call(self._service, self._prompt, model, self._tags, self.steps, started,
                        error=exc, status="refused", route=self.route)
            raise
        except (GeneratorExit, asyncio.CancelledError):  # the caller stopped reading
            record_call(service, self._prompt, model, self._tags, self.steps, started,
                        status="cancelled", first=stream.first_piece_at, route=self.route)
            raise
        except GatewayError as error:  # mapped and scrubbed by the gateway
            log_failure(service, self._prompt, model, self._tags, error)
            record_call(service, self._prompt, model, self._tags, self.steps, started,
                        error=error, first=stream.first_piece_at, route=self.route)
            raise
        completion = stream.completion
        assert completion is not None  # set when the stream ends
        self.reply = make_reply(self._prompt, model, completion, self._tags, self.sources)
        log_reply(service, self.reply, stream=True)
        record_call(service, self._prompt, model, self._tags, self.steps, started,
                    completion=completion, first=stream.first_piece_at, route=self.route,
                    fingerprint=fingerprint(model, self._messages))

    def __iter__(self) -> Iterator[str]:
        """Sync iteration: the async stream runs on a helper thread (works inside Jupyter);
        leaving the loop early or an interrupt cancels it there."""
        return iterate_sync(self.__aiter__)
