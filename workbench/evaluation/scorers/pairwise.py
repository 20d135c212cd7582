"""Pairwise judging: which of two variants answered each example better, asked in both
orders so that a judge's position bias shows instead of a fake win."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...gateway.send import for_calls
from ...prompts.templates import PromptTemplate
from ..evalsets import Example
from .judges import _SYSTEM, _json_object, _shared_cache, as_model_config

if TYPE_CHECKING:
    import pandas as pd

    from ...results import Results

_PAIRWISE = (
    "Which answer better serves the user, judged on: {{criteria}}?\n\n"
    "<inputs>\n{{inputs}}\n</inputs>\n\n<answer_A>\n{{answer_a}}\n</answer_A>\n\n"
    "<answer_B>\n{{answer_b}}\n</answer_B>\n\n"
    'Reply with a JSON object only: {"reason": "<one or two sentences>", '
    '"winner": "A", "B" or "tie"}')


@dataclass(frozen=True)
class PairwiseReport:
    """Per example, the judge's preference asked both ways round, and how often it flipped.

    A preference counts only when both orders agree; ``position_bias`` is the share of
    examples where swapping the answers changed the verdict (a judge that favours whatever
    comes first shows up here, not as a fake win).
    """

    a: str
    b: str
    frame: pd.DataFrame
    judge_cost: float
    judge_tokens: int

    @property
    def n(self) -> int:
        return int(self.frame["preferred"].ne("error").sum())

    def _share(self, value: str) -> float:
        return float((self.frame["preferred"] == value).sum() / self.n) if self.n else float("nan")

    @property
    def win_rate_a(self) -> float:
        return self._share(self.a)

    @property
    def win_rate_b(self) -> float:
        return self._share(self.b)

    @property
    def ties(self) -> float:
        return self._share("tie")

    @property
    def position_bias(self) -> float:
        return self._share("inconsistent")

    def __str__(self) -> str:
        return (f"pairwise {self.a} vs {self.b} over {self.n} examples: {self.a} "
                f"{self.win_rate_a:.0%}, {self.b} {self.win_rate_b:.0%}, tie {self.ties:.0%}; "
                f"verdict flipped with the order in {self.position_bias:.0%} "
                f"(judge cost ${self.judge_cost:.4f}, {self.judge_tokens} tokens)")


def pairwise(results: Results | pd.DataFrame, a: str, b: str, *, model: Any,
             examples: Sequence[Example] | None = None, criteria: str = "helpfulness, "
             "correctness and clarity", use_cache: bool = True) -> PairwiseReport:
    """Ask a judge which of two variants answered each example better, both orders."""
    from ...aio import run_sync

    return run_sync(lambda: apairwise(results, a, b, model=model, examples=examples,
                                      criteria=criteria, use_cache=use_cache))


async def apairwise(results: Results | pd.DataFrame, a: str, b: str, *, model: Any,
                    examples: Sequence[Example] | None = None,
                    criteria: str = "helpfulness, correctness and clarity",
                    use_cache: bool = True) -> PairwiseReport:
    """Async form of ``pairwise``; calls run one example at a time, both orders at once."""
    import asyncio

    import pandas as pd

    config = as_model_config(model)
    frame = getattr(results, "frame", results)
    ok = frame[frame["error"].isna()] if "error" in frame.columns else frame
    outputs = {v: ok[ok["variant"] == v].groupby("example_id")["output"].first() for v in (a, b)}
    ids = [i for i in outputs[a].index if i in outputs[b].index]
    inputs = {e.id: dict(e.inputs) for e in examples or ()}
    gateway = for_calls(_shared_cache() if use_cache else None)
    template = PromptTemplate(_PAIRWISE, name="judge-pairwise")
    rows, cost, tokens = [], 0.0, 0

    async def ask(first: str, second: str, example_id: str) -> tuple[str, str]:
        nonlocal cost, tokens
        messages = [{"role": "system", "content": _SYSTEM}, *template.render(
            criteria=criteria, inputs=json.dumps(inputs.get(example_id, {}), default=str),
            answer_a=outputs[first][example_id], answer_b=outputs[second][example_id])]
        done = await gateway.complete(config, messages, use_cache=use_cache)
        cost += done.cost
        tokens += done.prompt_tokens + done.completion_tokens
        data = _json_object(done.text) or {}
        pick = str(data.get("winner", "")).strip().upper()
        mapping = {"A": first, "B": second, "TIE": "tie"}
        return mapping.get(pick, "error"), str(data.get("reason", done.text[:200]))

    for example_id in ids:
        (ab, why_ab), (ba, why_ba) = await asyncio.gather(ask(a, b, example_id),
                                                          ask(b, a, example_id))
        preferred = "error" if "error" in (ab, ba) else ab if ab == ba else "inconsistent"
        rows.append({"example_id": example_id, "a_first": ab, "b_first": ba,
                     "preferred": preferred, "reason_a_first": why_ab, "reason_b_first": why_ba})
    columns = ["example_id", "a_first", "b_first", "preferred", "reason_a_first",
               "reason_b_first"]
    return PairwiseReport(a, b, pd.DataFrame(rows, columns=columns), cost, tokens)
