"""RAG panel: index versions with a freshness badge, recall by cutoff with CIs per retriever
variant, the queries whose relevant documents were missed, and the recommendation."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ._common import esc, note, panel_box, shows_errors, table, themed_svg

if TYPE_CHECKING:
    import pandas as pd

    from ..experiment import Experiment
    from ..results import Results


class RagPanel(widgets.VBox):
    """Over an experiment with ``retrievers:`` and its results (``exp.run()``)."""

    def __init__(self, experiment: Experiment, results: Results, *, margin: float = 0.05,
                 **kwargs: Any) -> None:
        self.experiment, self.results = experiment, results
        self.indexes = widgets.HTML()
        self.curves = widgets.HTML()
        self.chart = widgets.HTML()
        self.variant = widgets.Dropdown(description="Variant",
                                        options=[v.name for v in experiment.variants
                                                 if v.retriever is not None])
        self.misses = widgets.HTML(layout=widgets.Layout(max_height="320px", overflow="auto"))
        self.margin = widgets.BoundedFloatText(value=margin, min=0.001, max=1.0, step=0.01,
                                               description="Margin")
        self.recommendation = widgets.HTML()
        self.status = widgets.HTML()
        super().__init__(panel_box([
            self.status, widgets.HTML("<h4>Index versions</h4>"), self.indexes,
            widgets.HTML("<h4>Recall by cutoff (95% CI)</h4>"), self.curves, self.chart,
            widgets.HTML("<h4>Missed relevant documents</h4>"), self.variant, self.misses,
            widgets.HTML("<h4>Recommendation</h4>"), self.margin, self.recommendation],
            "Retrieval"), **kwargs)
        self.add_class("wb-panel")
        self.variant.observe(lambda _: self.show_misses(), "value")
        self.margin.observe(lambda _: self.recommend(), "value")
        self.refresh()

    def refresh(self) -> None:
        self.show_indexes()
        self.show_curves()
        self.show_misses()
        self.recommend()

    @shows_errors("status", "read the index versions")
    def show_indexes(self) -> None:
        from ..rag import status
        from ..rag.errors import CorpusError

        rows, seen = [], set()
        for retriever in self.experiment.retrievers.values():
            for index in retriever.indexes:
                if index.ref in seen:
                    continue
                seen.add(index.ref)
                try:
                    fresh = status(index)
                except CorpusError as exc:  # built from records: nothing to compare with
                    badge, said = ("unknown", "info"), str(exc)
                else:
                    badge = ("BREACHED", "error") if fresh.breached else (
                        ("stale", "warn") if fresh.stale_documents else ("fresh", "ok"))
                    said = str(fresh)
                rows.append(f"<tr><td>{esc(index.ref)}</td><td>{esc(repr(index))}</td>"
                            f"<td>{note(badge[0], badge[1])}</td><td>{esc(said)}</td></tr>")
        self.indexes.value = ("<table class='wb-table'><tr><th>version</th><th>index</th>"
                              "<th>freshness</th><th>status</th></tr>" + "".join(rows)
                              + "</table>")

    @shows_errors("status", "compute recall by cutoff")
    def show_curves(self) -> None:
        frame = recall_curves(self.experiment)
        self.curves.value = table(frame.round(3))
        self.chart.value = themed_svg(lambda: _plot(frame))

    @shows_errors("status", "list the missed documents")
    def show_misses(self) -> None:
        chosen = next((v for v in self.experiment.variants if v.name == self.variant.value),
                      None)
        if chosen is None:
            self.misses.value = note("No retriever variant.", "info")
            return
        rows = []
        found = chosen.retriever.retrieve(self.experiment.evalset.examples)
        for example, retrieval in zip(self.experiment.evalset.examples, found, strict=True):
            from ..rag.retrieve import relevance

            wanted = relevance(example.inputs.get(chosen.retriever.spec.relevant_field or ""))
            missed = sorted(set(wanted) - set(retrieval.sources))
            if missed:
                rows.append({"id": example.id,
                             "query": example.inputs.get(chosen.retriever.spec.query_field),
                             "missed": ", ".join(missed),
                             "retrieved": ", ".join(retrieval.sources)})
        import pandas as pd

        self.misses.value = (table(pd.DataFrame(rows), index=False) if rows else
                             note(f"{chosen.name} retrieved every relevant document.", "ok"))

    @shows_errors("status", "recommend a retriever")
    def recommend(self) -> None:
        from ..rag import recommend

        rec = recommend(self.results, margin=self.margin.value)
        self.recommendation.value = note(str(rec), "ok") + table(rec.evidence.round(4))


def recall_curves(experiment: Experiment) -> pd.DataFrame:
    """Mean recall of each retriever variant at every cutoff up to its ``k`` (chunks sent),
    with a 95% t interval over the examples."""
    import pandas as pd
    from scipy import stats

    from ..rag.metrics import ranked_documents, recall_at_k
    from ..rag.retrieve import relevance

    rows = []
    examples = experiment.evalset.examples
    for name, retriever in experiment.retrievers.items():
        field = retriever.spec.relevant_field
        if field is None:
            continue
        found = retriever.retrieve(examples)
        for cut in range(1, retriever.spec.k + 1):
            values = [recall_at_k(ranked_documents(r.hits[:cut]), relevance(e.inputs[field]),
                                  cut) for e, r in zip(examples, found, strict=True)]
            mean = sum(values) / len(values)
            sd = pd.Series(values).std(ddof=1) if len(values) > 1 else math.nan
            half = float(stats.t.ppf(0.975, len(values) - 1) * sd / math.sqrt(len(values))) \
                if len(values) > 1 else math.nan
            rows.append({"retriever": name, "k": cut, "recall": mean,
                         "ci_low": max(0.0, mean - half), "ci_high": min(1.0, mean + half)})
    return pd.DataFrame(rows).set_index(["retriever", "k"])


def _plot(frame: pd.DataFrame) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.0))
    ax = fig.subplots()
    for name, part in frame.groupby(level="retriever", sort=False):
        ks = part.index.get_level_values("k")
        ax.plot(ks, part["recall"], marker="o", label=str(name))
        ax.fill_between(ks, part["ci_low"], part["ci_high"], alpha=0.15)
    ax.set_xlabel("chunks retrieved (k)")
    ax.set_ylabel("recall")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig
