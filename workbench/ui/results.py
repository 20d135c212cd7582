"""Results panel: summary with confidence intervals, charts, a per-example viewer with the
variants' outputs side by side, and links to the MLflow runs."""

from __future__ import annotations

import math
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from .._optional import optional_import
from ._common import esc, fmt, note, panel_box, table, themed_svg
from ._session import Session, as_session
from ._text import word_diff_html
from ._views import FILTERS, select, side_by_side
from .grid import GridView, grid_table


class ResultsPanel(widgets.VBox):
    """What a run found, from the summary down to one example's outputs."""

    def __init__(self, source: Any, *, mlflow_ui: str | None = None, **kwargs: Any) -> None:
        self.session: Session = as_session(source)
        # None: the run's tracking server when it is one, else the local `make ui`
        self.mlflow_ui = mlflow_ui.rstrip("/") if mlflow_ui else None
        self.header = widgets.HTML()
        self.summary = widgets.HTML()
        self.summary.add_class("wb-summary")
        self.chart = widgets.HTML(layout=widgets.Layout(max_width="100%", overflow="auto"))
        self.chart.add_class("wb-chart")
        self.grid = GridView()
        self.runs = widgets.HTML()
        self.classes = widgets.HTML()  # confusion matrices, for categorical metrics
        self.filter = widgets.ToggleButtons(options=[(f.capitalize(), f) for f in FILTERS],
                                            value="all", style={"button_width": "auto"})
        self.previous = widgets.Button(icon="chevron-left", tooltip="previous example",
                                       layout=widgets.Layout(width="40px"))
        self.next = widgets.Button(icon="chevron-right", tooltip="next example",
                                   layout=widgets.Layout(width="40px"))
        self.example = widgets.Dropdown(description="Example",
                                        style={"description_width": "60px"})
        self.position = widgets.HTML()
        self.example_view = widgets.HTML()
        self.viewer = widgets.Accordion(children=[widgets.VBox([
            self.filter, widgets.HBox([self.previous, self.example, self.next,
                                       self.position]), self.example_view])],
            titles=("Per-example outputs, variants side by side",), selected_index=None)
        self.grid_title = widgets.HTML("<h4>Examples × variants</h4><div class='wb-muted'>"
                                       "Cells are coloured by the primary score; filters "
                                       "compare each variant with the baseline.</div>")
        super().__init__(panel_box([self.header, self.summary, self.classes, self.chart,
                                    self.runs, self.grid_title, self.grid, self.viewer],
                                   "Results"), **kwargs)
        self.add_class("wb-panel")
        self._wide: pd.DataFrame | None = None
        self.filter.observe(lambda _: self._refresh_selection(), "value")
        self.example.observe(lambda _: self._show_example(), "value")
        self.previous.on_click(lambda _: self._step(-1))
        self.next.on_click(lambda _: self._step(1))
        self.session.observe(lambda _: self._rebuild(), "results")
        self._rebuild()

    # ---- building -------------------------------------------------------------------------
    def _rebuild(self) -> None:
        results = self.session.results
        visible = results is not None and len(results.frame) > 0
        for part in (self.chart, self.viewer, self.grid_title, self.grid):
            part.layout.display = None if visible else "none"
        if not visible:
            self.header.value = note("No results yet: run the experiment in the Run tab, or "
                                     "pass Results to this panel.", "info")
            self.summary.value = self.runs.value = self.classes.value = ""
            self.grid.show(None)
            return
        summary = results.summary()
        self.header.value = (
            f"<div class='wb-muted'>Experiment <b>{esc(results.experiment)}</b> · "
            f"{len(results.frame)} calls · {len(results.variants)} variants · primary metric "
            f"<b>{esc(results.primary)}</b> · mean per variant with its 95% CI</div>")
        self.summary.value = table(_summary_table(summary, results.metrics).reset_index(),
                                   index=False)
        self.classes.value = _classification_html(results)
        self.chart.value = themed_svg(lambda: _charts(summary, results.metrics,
                                                      results.primary))
        self.runs.value = self._run_links(results)
        self.grid.show(grid_table(results.frame, primary=results.primary,
                                  kinds=results.metrics, baseline=results.baseline),
                       _all_inputs(self.session.experiment))
        self._wide = side_by_side(results.frame)
        counts = {f: len(select(self._wide, f, results.primary, results.metrics))
                  for f in FILTERS}
        self.filter.options = [(f"{f.capitalize()} ({counts[f]})", f) for f in FILTERS]
        self._refresh_selection()

    def _run_links(self, results: Any) -> str:
        if not results.run_ids:
            return note("This run was not logged to MLflow (tracking off or cancelled).",
                        "info")
        server = str(getattr(results, "tracking_uri", "") or "")
        remote = server.startswith(("http://", "https://"))
        from ..tracking import ui_url

        base = self.mlflow_ui or ui_url(server or None)
        links = " · ".join(
            f'<a href="{esc(base)}/#/runs/{esc(run_id)}" target="_blank">'
            f"{esc('all variants' if key == 'parent' else key)}</a>"
            for key, run_id in results.run_ids.items())
        hint = "" if remote or self.mlflow_ui else \
            " (open the MLflow UI with <code>make ui</code>)"
        return f"<div class='wb-muted'>MLflow runs: {links}{hint}</div>"

    # ---- per-example viewer ---------------------------------------------------------------
    def _refresh_selection(self) -> None:
        results = self.session.results
        if self._wide is None or results is None:
            return
        keys = select(self._wide, self.filter.value, results.primary, results.metrics)
        repeats = self._wide.index.get_level_values("repeat").nunique() > 1
        options = [(f"{eid} (repeat {rep + 1})" if repeats else str(eid), (eid, rep))
                   for eid, rep in keys]
        self.example.options = options
        self.example.value = options[0][1] if options else None
        if not options:
            self.example_view.value = note(f"No {self.filter.value} in this run.", "ok")
            self.position.value = ""
        self._show_example()  # also when the first example is the same as before

    def _step(self, delta: int) -> None:
        values = [value for _, value in self.example.options]
        if values and self.example.value in values:
            index = (values.index(self.example.value) + delta) % len(values)
            self.example.value = values[index]

    def _show_example(self) -> None:
        results, key = self.session.results, self.example.value
        if self._wide is None or results is None or key is None:
            return
        values = [value for _, value in self.example.options]
        self.position.value = (f"<span class='wb-muted'>&nbsp;{values.index(key) + 1} of "
                               f"{len(values)}</span>")
        row = self._wide.loc[key]
        variants = results.variants
        baseline = results.baseline if results.baseline in variants else variants[0]
        inputs = _inputs(self.session.experiment, key[0])
        head = "".join(f"<div><b>{esc(k)}</b>: <span class='wb-text'>{esc(str(v))}</span></div>"
                       for k, v in inputs.items() if k != "id")
        cells = []
        base_text = row[("output", baseline)]
        for variant in variants:
            output, error = row[("output", variant)], row[("error", variant)]
            if isinstance(error, str):
                body = f"<div class='wb-note wb-error'>{esc(error)}</div>"
            elif variant == baseline or not isinstance(output, str) \
                    or not isinstance(base_text, str):
                body = f"<div class='wb-text'>{esc(str(output or ''))}</div>"
            else:
                body = f"<div class='wb-text'>{word_diff_html(base_text, output)}</div>"
            scores = " · ".join(
                f"{esc(m)} {_score(row[(f'score.{m}', variant)], kind)}"
                for m, kind in results.metrics.items())
            cells.append(f"<td>{body}<div class='wb-muted'>{scores}</div></td>")
        heads = "".join(f"<th>{esc(v)}{' (baseline)' if v == baseline else ''}</th>"
                        for v in variants)
        self.example_view.value = (
            f"<div style='margin:6px 0'>{head or esc(str(key[0]))}</div>"
            f"<table class='wb-table' style='width:100%;table-layout:fixed'><tr>{heads}</tr>"
            f"<tr>{''.join(cells)}</tr></table>"
            "<div class='wb-muted'>Words a variant adds over the baseline's output are "
            "<ins>green</ins>, words it drops are <del>red</del>.</div>")


def _inputs(experiment: Any, example_id: str) -> dict[str, Any]:
    if experiment is None:
        return {}
    found = next((e for e in experiment.evalset.examples if e.id == example_id), None)
    return dict(found.inputs) if found else {}


def _all_inputs(experiment: Any) -> dict[str, dict[str, Any]]:
    if experiment is None:
        return {}
    return {str(e.id): dict(e.inputs) for e in experiment.evalset.examples}


def _score(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if kind == "binary":
        return "✓" if value >= 1 else "✗"
    return fmt(float(value), 2)


def _summary_table(summary: pd.DataFrame, metrics: dict[str, str]) -> pd.DataFrame:
    out = pd.DataFrame(index=summary.index)
    out["examples"] = summary["n_examples"]
    out["calls"] = summary["n_calls"]
    out["errors"] = summary["n_errors"]
    for m in metrics:
        out[m] = [f"{fmt(v)} [{fmt(lo, 2)}, {fmt(hi, 2)}]" for v, lo, hi in zip(
            summary[m], summary[f"{m}_ci_low"], summary[f"{m}_ci_high"], strict=True)]
    out["tokens in/out"] = [f"{int(a)}/{int(b)}" for a, b in zip(
        summary["prompt_tokens"], summary["completion_tokens"], strict=True)]
    out["cost $"] = [fmt(c, 4) for c in summary["cost"]]
    out["median s"] = [fmt(x, 2) for x in summary["latency_p50"]]
    return out


def _classification_html(results: Any) -> str:
    """Per categorical metric: each variant's balanced accuracy, kappa, recall per class,
    answers, degenerate flag, and its confusion matrix (rows expected, columns answered)."""
    from workbench.evaluation.classification import categorical_metrics

    parts = []
    for metric in categorical_metrics(results.frame, results.metrics):
        reports = results.classification(metric)
        rows, matrices = [], []
        for variant, r in reports.items():
            answers = ", ".join(f"{a if len(a) <= 24 else a[:23] + '…'} {share:.0%}"
                                for a, share in r.outputs.head(3).items())
            rows.append({
                "variant": variant, "balanced accuracy": fmt(r.balanced_accuracy),
                "kappa": fmt(r.kappa, 2),
                **{f"recall {c}": fmt(v, 2) for c, v in r.recall.items()},
                f"majority baseline ({r.majority_label})": fmt(r.majority_share),
                "answers (top 3)": answers + (", …" if len(r.outputs) > 3 else ""),
                "flag": "degenerate" if r.degenerate else ""})
            matrices.append(f"<div style='display:inline-block;margin:0 12px 6px 0'>"
                            f"<b>{esc(variant)}</b>{table(r.confusion)}</div>")
        flags = "".join(note(f"{v} is degenerate: {r.degenerate}", "warn")
                        for v, r in reports.items() if r.degenerate)
        parts.append(f"<h4>{esc(metric)}: classes</h4>"
                     f"{table(pd.DataFrame(rows), index=False)}{flags}"
                     f"<div class='wb-muted'>Confusion matrices: rows are the expected "
                     f"label, columns the answer; counts over calls.</div>{''.join(matrices)}")
    return "".join(parts)


def _error_bars(summary: pd.DataFrame, metric: str) -> np.ndarray:
    """Distances from the mean to the CI ends; none where undefined, never negative (a
    rounding step can put a mean a hair outside its interval)."""
    means = summary[metric].to_numpy(dtype=float)
    low = means - summary[f"{metric}_ci_low"].to_numpy(dtype=float)
    high = summary[f"{metric}_ci_high"].to_numpy(dtype=float) - means
    return np.clip(np.nan_to_num(np.array([low, high])), 0.0, None)


def _charts(summary: pd.DataFrame, metrics: dict[str, str], primary: str) -> Any:
    Figure = optional_import("matplotlib.figure", "lab", "the results charts").Figure

    fig = Figure(figsize=(9, 3.2), layout="constrained")
    scores_ax, cost_ax = fig.subplots(1, 2, width_ratios=[3, 2])
    variants = list(summary.index)
    width = 0.8 / max(1, len(metrics))
    for i, metric in enumerate(metrics):
        means = summary[metric].to_numpy(dtype=float)
        xs = [j + (i - (len(metrics) - 1) / 2) * width for j in range(len(variants))]
        scores_ax.bar(xs, np.nan_to_num(means), width * 0.9, yerr=_error_bars(summary, metric),
                      capsize=3, label=metric)
    scores_ax.set_xticks(range(len(variants)), variants, fontsize=8)
    scores_ax.set_title("Scores by variant (mean, 95% CI)", fontsize=9, loc="left")
    scores_ax.legend(fontsize=7, frameon=False)
    scores_ax.tick_params(axis="y", labelsize=8)
    per_call = summary["cost"] / summary["n_calls"].clip(lower=1)
    if (per_call > 0).any():
        xs, xlabel = per_call, "cost per call ($)"
    else:
        xs = (summary["prompt_tokens"] + summary["completion_tokens"]) / \
            summary["n_calls"].clip(lower=1)
        xlabel = "tokens per call (every call was free)"
    ys = summary[primary].to_numpy(dtype=float)
    cost_ax.errorbar(xs, ys, yerr=_error_bars(summary, primary), fmt="o", capsize=3)
    for x, y, name in zip(xs, ys, variants, strict=True):
        cost_ax.annotate(name, (x, y), xytext=(5, 3), textcoords="offset points", fontsize=8)
    cost_ax.set_xlabel(xlabel, fontsize=8)
    cost_ax.set_ylabel(primary, fontsize=8)
    cost_ax.set_title(f"Cost vs {primary}", fontsize=9, loc="left")
    cost_ax.tick_params(labelsize=8)
    cost_ax.margins(x=0.3, y=0.2)
    return fig
