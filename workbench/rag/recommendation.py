"""The cheapest retriever that is not worse: fewest context tokens, non-inferior on recall.

More chunks, or bigger ones, buy recall with tokens the model reads on every call. The
recommendation takes the retriever variant with the best mean recall and, starting from
the one with the fewest context tokens, the first variant that the paired non-inferiority
test shows to be worse than it by less than ``margin`` (recall units). The evidence is the
test of every cheaper candidate, so a reader sees why the cheaper ones were passed over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import RagError
from .retrieve import CONTEXT_TOKENS

if TYPE_CHECKING:
    import pandas as pd

    from ..results import Results


@dataclass(frozen=True)
class Recommendation:
    """The recommended retriever variant, the best one, and the tests behind the choice."""

    variant: str
    best: str
    metric: str
    margin: float
    alpha: float
    context_tokens: float  # mean per example, recommended variant
    best_context_tokens: float
    value: float  # mean of ``metric``, recommended variant
    best_value: float
    evidence: pd.DataFrame  # one row per variant, fewest context tokens first

    def __str__(self) -> str:
        if self.variant == self.best:
            return (f"{self.best}: no variant with fewer context tokens is shown to be within "
                    f"{self.margin:g} of its {self.metric} ({self.best_value:.3f}, "
                    f"{self.best_context_tokens:.0f} context tokens per example)")
        row = self.evidence.loc[self.variant]
        saved = 1 - self.context_tokens / self.best_context_tokens
        return (f"{self.variant}: {self.context_tokens:.0f} context tokens per example "
                f"({saved:.0%} fewer than {self.best}), {self.metric} {self.value:.3f} against "
                f"{self.best_value:.3f}; non-inferior within {self.margin:g} "
                f"(one-sided {1 - self.alpha:.0%} bound {row['bound']:+.3f}, "
                f"p={row['p_value']:.3g}, {row['test']})")

    def _repr_html_(self) -> str:
        return f"<p>{self}</p>" + self.evidence._repr_html_()


def recommend(results: Results, *, margin: float = 0.05, metric: str = "recall_at_k",
              alpha: float = 0.05) -> Recommendation:
    """The variant with the fewest context tokens non-inferior to the best on ``metric``."""
    import pandas as pd

    frame = results.frame
    for needed in (metric, CONTEXT_TOKENS):
        if f"score.{needed}" not in frame:
            raise RagError(f"the results have no {needed!r} scores: recommend() needs a run of "
                           "an experiment with `retrievers:` and labelled relevant ids")
    # a failed call's row keeps its retrieval scores: the retrieval happened
    means = frame.groupby("variant", sort=False)[[f"score.{metric}", f"score.{CONTEXT_TOKENS}"]
                                              ].mean().dropna()
    if len(means) < 2:
        raise RagError(f"recommend() compares retriever variants; the results have "
                       f"{list(means.index)} with scores")
    means.columns = [metric, CONTEXT_TOKENS]
    best = str(means[metric].idxmax())
    rows = []
    for variant in means.sort_values([CONTEXT_TOKENS, metric], ascending=[True, False]).index:
        row = {"variant": variant, CONTEXT_TOKENS: means.loc[variant, CONTEXT_TOKENS],
               metric: means.loc[variant, metric], "diff": 0.0, "bound": float("nan"),
               "p_value": float("nan"), "test": "", "non_inferior": variant == best}
        if variant != best:
            report = results.compare(best, variant, primary=metric, guardrails=(),
                                     non_inferiority_margin=margin, alpha=alpha)
            found = report.pairs[0].metrics[metric]
            ni = found.ni
            row.update(diff=found.diff, bound=ni.bound if ni else float("nan"),
                       p_value=ni.p_value if ni else float("nan"),
                       test=(ni.method + (f" ({ni.reason})" if ni.reason else "")) if ni else "",
                       non_inferior=bool(ni and ni.non_inferior))
        rows.append(row)
    evidence = pd.DataFrame(rows).set_index("variant")
    chosen = next(v for v, r in evidence.iterrows() if r["non_inferior"])
    return Recommendation(
        variant=str(chosen), best=best, metric=metric, margin=margin, alpha=alpha,
        context_tokens=float(means.loc[chosen, CONTEXT_TOKENS]),
        best_context_tokens=float(means.loc[best, CONTEXT_TOKENS]),
        value=float(means.loc[chosen, metric]), best_value=float(means.loc[best, metric]),
        evidence=evidence)
