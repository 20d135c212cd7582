"""The types the experiment loop shares: a ``Variant``, and a run's planned calls.

Below both the runner and the preflight checks, which use them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .gateway.config import ModelConfig
from .prompts.templates import PromptTemplate

if TYPE_CHECKING:
    from .evaluation.evalsets import Example

Message = dict[str, str]


@dataclass(frozen=True)
class Variant:
    """One arm of the comparison: a prompt template called on one model."""

    name: str
    prompt_name: str
    prompt: PromptTemplate
    model_name: str
    model: ModelConfig
    # a workbench.rag.retrieve.Retriever: fills {{context}} for each example
    retriever: Any = field(default=None, compare=False)

    def example(self, example: Example) -> Example:
        """The example as this variant renders and scores it (with its retrieved context)."""
        return example if self.retriever is None else self.retriever.augment(example)


@dataclass
class Call:
    """One planned call: what is sent, and what is known before sending it."""

    messages: list[Message]
    prompt_tokens: int | None = None
    warning: str | None = None
    keys: list[str] = field(default_factory=list)  # the cache key of each repeat


@dataclass
class Plan:
    """The calls of a run, checked; ``calls[(variant, example_id)]``."""

    calls: dict[tuple[str, str], Call] = field(default_factory=dict)
    to_send: int = 0
    cached: int = 0
    estimated_cost: float = 0.0  # NaN when some model has no known price
    judges: int = 0  # LLM-judge scorers: each sends a call per new answer, not estimated

    def messages(self, variant: str, example_id: str) -> Call:
        return self.calls[(variant, example_id)]

    def __str__(self) -> str:
        cost = "unknown (no price for some model)" if math.isnan(self.estimated_cost) \
            else f"at most ${self.estimated_cost:.4f}"
        judged = (f"; plus up to {self.to_send * self.judges} judge call(s), not in the "
                  "estimate" if self.judges and self.to_send else "")
        return f"{self.to_send} calls to send ({self.cached} cached), {cost}{judged}"
