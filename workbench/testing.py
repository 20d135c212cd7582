"""Helpers for a project's own pytest suite: a model that answers from your code, and the
regression gate as an assertion.

    from workbench.testing import FakeSend, assert_no_regression

    def test_the_guided_prompt_is_scored_as_expected():
        fake = FakeSend(lambda config, messages: "positive")
        results = Experiment.from_yaml("experiments/support-triage").run(
            send=fake, track=False, progress=False)
        assert len(fake.calls) == len(results.frame)

    def test_prompt_does_not_regress():
        assert_no_regression("experiments/support-triage", baseline="production")
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import (
    ConnectionFailed,
    ContextWindowExceeded,
    GatewayError,
    ProviderError,
    RateLimited,
    Timeout,
    Unauthorized,
    WorkbenchError,
)
from .gateway.config import Completion, ModelConfig

if TYPE_CHECKING:
    from .evaluation.gate import GateResult

__all__ = ["FakeCall", "FakeSend", "assert_no_regression", "refusal"]

Message = dict[str, str]
Answer = str | Completion | BaseException | type[BaseException]
Handler = Callable[[ModelConfig, list[Message]], Any]  # returns an Answer, or awaits one

# what a provider's refusal looks like once mapped: litellm's class name and the status
_REFUSALS: dict[type[GatewayError], tuple[str, int | None, str]] = {
    RateLimited: ("RateLimitError", 429, "Rate limit reached for requests"),
    Unauthorized: ("AuthenticationError", 401, "Incorrect API key provided"),
    ContextWindowExceeded: ("ContextWindowExceededError", 400,
                            "This model's maximum context length was exceeded"),
    Timeout: ("Timeout", None, "Request timed out"),
    ConnectionFailed: ("APIConnectionError", None, "Connection error"),
    ProviderError: ("InternalServerError", 500, "The server had an error"),
}


@dataclass(frozen=True)
class FakeCall:
    """One call a ``FakeSend`` answered: what was asked, of which model."""

    config: ModelConfig
    messages: list[Message]
    repeat: int

    @property
    def prompt(self) -> str:
        """The text of the last message: usually the rendered user turn."""
        return self.messages[-1].get("content", "") if self.messages else ""


class FakeSend:
    """A model that answers from your code, in memory: an experiment runs in milliseconds.

    Like ``httpx.MockTransport``, it replaces only the transport: prompts are rendered,
    checked, scored and summarised as in a real run. ``answers`` is a handler
    ``(config, messages) -> answer`` (plain or async) or a mapping from the last message's
    text to an answer, with ``default`` for any other text. An answer is the reply text, a
    whole ``Completion`` (to set tokens or cost yourself), or an exception to raise: an error
    class of the gateway's tree (``RateLimited``, ``Unauthorized``, ``Timeout``, ...) becomes
    the error a real provider's refusal becomes, with its model, HTTP status and message.

    Tokens are counted one per word, so they are the same on every run; the cost is priced
    at the config's ``input_cost_per_token`` / ``output_cost_per_token`` (else 0). Every call
    is recorded in ``calls``; ``latency_s`` makes each call take that long. Nothing is read
    from or written to the response cache, and no call leaves the process.
    """

    def __init__(self, answers: Handler | Mapping[str, Answer], *,
                 default: Answer | None = None, latency_s: float = 0.0) -> None:
        if latency_s < 0:
            raise ValueError(f"latency_s must be >= 0, not {latency_s}")
        self.answers, self.default, self.latency_s = answers, default, latency_s
        self.calls: list[FakeCall] = []

    def __repr__(self) -> str:
        return f"FakeSend({len(self.calls)} calls, latency_s={self.latency_s})"

    async def complete(self, config: ModelConfig, messages: list[Message], *, repeat: int = 0,
                       use_cache: bool = True, key: str | None = None) -> Completion:
        """Answer one call as the handler or the mapping says; see the class docstring."""
        self.calls.append(FakeCall(config, [dict(m) for m in messages], repeat))
        answer = self._answer(config, messages)
        if inspect.isawaitable(answer):
            answer = await answer
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if isinstance(answer, type) and issubclass(answer, BaseException):
            answer = refusal(answer, config) if issubclass(answer, GatewayError) else answer()
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, Completion):
            return answer
        if not isinstance(answer, str):
            raise WorkbenchError(f"FakeSend: the answer for {config.model} is a "
                                 f"{type(answer).__name__}; give a str, a Completion or an "
                                 "exception")
        return self._completion(config, messages, answer)

    def _answer(self, config: ModelConfig, messages: list[Message]) -> Any:
        if callable(self.answers):
            return self.answers(config, messages)
        text = messages[-1].get("content", "") if messages else ""
        if text in self.answers:
            return self.answers[text]
        if self.default is not None:
            return self.default
        raise WorkbenchError(f"FakeSend has no answer for the message {text[:80]!r} "
                             f"({config.model}); add it to the mapping or give default=")

    def _completion(self, config: ModelConfig, messages: list[Message], text: str
                    ) -> Completion:
        prompt = sum(len(str(m.get("content", "")).split()) for m in messages)
        completion = len(text.split())
        cost = (prompt * (config.input_cost_per_token or 0.0)
                + completion * (config.output_cost_per_token or 0.0))
        return Completion(text=text, model=config.model, prompt_tokens=prompt,
                          completion_tokens=completion, cost=cost, latency_s=self.latency_s)


def refusal(kind: type[GatewayError], config: ModelConfig) -> GatewayError:
    """The error a provider's refusal of this kind becomes in the gateway (same message
    shape, model and status), for a fake transport or a test of error handling."""
    base = next((k for k in kind.__mro__ if k in _REFUSALS), ProviderError)
    name, status, text = _REFUSALS[base]  # type: ignore[index]
    shown = f" ({status})" if status else ""
    return kind(f"{config.model}: {name}{shown}: {text}", model=config.model, status=status,
                retries=0)


def assert_no_regression(experiment_dir: str | Path, baseline: str = "production", *,
                         candidate: str | None = None, **options: Any) -> GateResult:
    """Fail the test with the gate's report when the candidate regresses; else return it."""
    from .evaluation.gate import check

    __tracebackhide__ = True  # pytest shows the report, not this frame
    result = check(experiment_dir, baseline=baseline, candidate=candidate, **options)
    if not result.passed:
        raise AssertionError(result.to_text())
    return result
