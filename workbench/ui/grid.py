"""Examples × variants grid: one row per example, one column per variant, cells coloured by
the primary score, filtered and sorted against the baseline, one page at a time.

``grid_table`` and ``grid_rows`` are plain functions over the results frame (tested without a
widget); ``GridView`` only renders the page they select, so 5,000 examples stay responsive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from ._common import esc, note
from ._text import word_diff_html

GRID_FILTERS = ("all", "regressed", "improved", "errors", "disagree")
SORTS = ("example", "spread", "baseline")
PAGE_SIZE = 25
# Long outputs are cut in the cell (the full text is in the per-example viewer).
CELL_CHARS = 1200


@dataclass(frozen=True)
class GridTable:
    """The results frame reshaped for the grid: rows (example_id, repeat), one column per
    variant for each of output, error and primary score."""

    output: pd.DataFrame
    error: pd.DataFrame
    score: pd.DataFrame
    variants: list[str]
    baseline: str
    primary: str
    kind: str

    def __len__(self) -> int:
        return len(self.score)


def grid_table(frame: pd.DataFrame, *, primary: str, kinds: Mapping[str, str],
               baseline: str | None = None) -> GridTable:
    """Pivot the one-row-per-call frame; the baseline is the first variant when not given
    (or not in the frame), as the comparison does."""
    variants = list(dict.fromkeys(frame["variant"]))
    base = baseline if baseline in variants else variants[0]
    keyed = frame.set_index(["example_id", "repeat", "variant"])

    def wide(column: str) -> pd.DataFrame:
        return keyed[column].unstack("variant").reindex(columns=variants)

    order = pd.MultiIndex.from_frame(
        frame[["example_id", "repeat"]].drop_duplicates())  # the eval set's order
    score = wide(f"score.{primary}").astype(float).reindex(order)
    return GridTable(output=wide("output").reindex(order), error=wide("error").reindex(order),
                     score=score, variants=variants, baseline=base, primary=primary,
                     kind=kinds.get(primary, "continuous"))


def grid_masks(table: GridTable, candidate: str | None = None) -> dict[str, np.ndarray]:
    """Per filter, which rows it keeps. Regressed / improved: a variant's primary score is
    below / above the baseline's on that row (rows where either call errored have no score
    to compare and show under "errors"). Disagree: the variants' scores are not all equal.
    With ``candidate``, only that variant and the baseline are compared."""
    columns = table.variants
    if candidate is not None:
        if candidate not in columns:
            raise ValueError(f"candidate must be a variant {columns}, not {candidate!r}")
        columns = [table.baseline, candidate]
    picked = [table.variants.index(c) for c in columns]
    scores = table.score.to_numpy(dtype=float)[:, picked]
    base = table.score[table.baseline].to_numpy(dtype=float)[:, None]
    with np.errstate(invalid="ignore"):
        lower, higher = scores < base, scores > base
    return {"all": np.ones(len(scores), dtype=bool),
            "regressed": lower.any(axis=1), "improved": higher.any(axis=1),
            "errors": table.error.notna().to_numpy()[:, picked].any(axis=1),
            "disagree": _spread(scores) > 0}


def _spread(scores: np.ndarray) -> np.ndarray:
    """Per row, the highest minus the lowest score; 0 where fewer than two are scored."""
    scored = ~np.isnan(scores)
    high = np.max(np.where(scored, scores, -np.inf), axis=1, initial=-np.inf)
    low = np.min(np.where(scored, scores, np.inf), axis=1, initial=np.inf)
    return np.where(scored.sum(axis=1) >= 2, high - low, 0.0)


def grid_rows(table: GridTable, which: str = "all", sort: str = "example",
              candidate: str | None = None) -> np.ndarray:
    """Positions of the rows to show, in display order (``candidate`` as in ``grid_masks``).

    ``sort`` is ``example`` (eval set order), ``spread`` (largest score spread across the
    variants first), ``baseline`` (lowest baseline score first) or a variant's name (lowest
    score of that variant first). Ties keep the eval set's order.
    """
    if which not in GRID_FILTERS:
        raise ValueError(f"filter must be one of {GRID_FILTERS}, not {which!r}")
    keep = np.flatnonzero(grid_masks(table, candidate)[which])
    scores = table.score.to_numpy(dtype=float)[keep]
    if sort == "example":
        return keep
    if sort == "spread":
        key = -_spread(scores)
    else:
        column = table.baseline if sort == "baseline" else sort
        if column not in table.variants:
            raise ValueError(f"sort must be one of {SORTS} or a variant "
                             f"{table.variants}, not {sort!r}")
        key = np.nan_to_num(scores[:, table.variants.index(column)], nan=np.inf)
    return keep[np.argsort(key, kind="stable")]


def score_colour(value: float, kind: str, low: float = 0.0, high: float = 1.0) -> str:
    """A theme colour for a score: the error colour at ``low`` blending into the success
    colour at ``high`` (CSS ``color-mix`` over JupyterLab's variables)."""
    if value is None or not math.isfinite(value):
        return "transparent"
    share = 1.0 if high <= low else min(1.0, max(0.0, (value - low) / (high - low)))
    if kind == "binary":
        share = 1.0 if value >= 1 else 0.0
    good = round(share * 100)
    return (f"color-mix(in srgb, color-mix(in srgb, var(--jp-success-color1, green) {good}%, "
            f"var(--jp-error-color1, red)) 22%, transparent)")


def _cell(table: GridTable, row: int, variant: str, diff: bool, low: float,
          high: float) -> str:
    error = table.error.iat[row, table.variants.index(variant)]
    output = table.output.iat[row, table.variants.index(variant)]
    score = float(table.score.iat[row, table.variants.index(variant)])
    if isinstance(error, str):
        return (f"<td class='wb-cell wb-cell-error'><div class='wb-note wb-error'>"
                f"{esc(error[:CELL_CHARS])}</div></td>")
    text = output[:CELL_CHARS] if isinstance(output, str) else ""
    base = table.output.iat[row, table.variants.index(table.baseline)]
    if diff and variant != table.baseline and isinstance(base, str):
        body = word_diff_html(base[:CELL_CHARS], text)
    else:
        body = esc(text)
    shown = "–" if not math.isfinite(score) else (
        ("✓" if score >= 1 else "✗") if table.kind == "binary" else f"{score:.2f}")
    return (f"<td class='wb-cell' style='background:{score_colour(score, table.kind, low, high)}'>"
            f"<div class='wb-text'>{body}</div>"
            f"<div class='wb-muted'>{esc(table.primary)} {shown}</div></td>")


def page_html(table: GridTable, rows: np.ndarray, *, diff: bool = False,
              inputs: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The grid's HTML for ``rows`` (positions from ``grid_rows``), one page."""
    finite = table.score.to_numpy(dtype=float)
    finite = finite[np.isfinite(finite)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if table.kind != "continuous" or (low >= 0 and high <= 1):
        low, high = 0.0, 1.0
    heads = "".join(f"<th>{esc(v)}{' (baseline)' if v == table.baseline else ''}</th>"
                    for v in table.variants)
    body = []
    for row in rows:
        example_id, repeat = table.score.index[row]
        label = esc(str(example_id)) + (f" <span class='wb-muted'>#{repeat + 1}</span>"
                                        if repeat else "")
        shown = (inputs or {}).get(str(example_id), {})
        detail = "".join(f"<div class='wb-muted wb-text'>{esc(str(v))[:300]}</div>"
                         for k, v in shown.items() if k != "id")
        cells = "".join(_cell(table, row, v, diff, low, high) for v in table.variants)
        body.append(f"<tr><th class='wb-rowhead'>{label}{detail}</th>{cells}</tr>")
    width = 180 + 220 * len(table.variants)  # px: each variant column stays readable
    return (f"<div class='wb-grid'><table class='wb-table' style='table-layout:fixed;"
            f"width:max(100%, {width}px)'><colgroup><col style='width:180px'>"
            + "<col>" * len(table.variants)
            + f"</colgroup><thead><tr><th>example</th>{heads}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


class GridView(widgets.VBox):
    """The grid widget: filter, sort, raw output or diff against the baseline, pages."""

    def __init__(self, *, page_size: int = PAGE_SIZE, **kwargs: Any) -> None:
        self.page_size = page_size
        self.filter = widgets.ToggleButtons(options=[(f.capitalize(), f) for f in GRID_FILTERS],
                                            value="all", style={"button_width": "auto"})
        self.sort = widgets.Dropdown(description="Sort", options=[("eval set order", "example")],
                                     value="example", style={"description_width": "40px"},
                                     layout=widgets.Layout(width="260px"))
        self.candidate = widgets.Dropdown(description="Compare", options=[("every variant", "")],
                                          value="", style={"description_width": "60px"},
                                          layout=widgets.Layout(width="280px"))
        self.diff = widgets.Checkbox(value=False, description="diff vs baseline",
                                     style={"description_width": "initial"},
                                     layout=widgets.Layout(width="160px"))
        self.previous = widgets.Button(icon="chevron-left", tooltip="previous page",
                                       layout=widgets.Layout(width="40px"))
        self.next = widgets.Button(icon="chevron-right", tooltip="next page",
                                   layout=widgets.Layout(width="40px"))
        self.position = widgets.HTML()
        self.body = widgets.HTML()
        super().__init__([self.filter, widgets.HBox([self.candidate, self.sort, self.diff,
                                                     self.previous, self.next]),
                          self.position, self.body], **kwargs)
        self.add_class("wb-grid-view")
        self.table: GridTable | None = None
        self.inputs: Mapping[str, Mapping[str, Any]] = {}
        self.page = 0
        self._rows = np.array([], dtype=int)
        self._building = False  # options being replaced: select once, at the end
        for control in (self.filter, self.sort):
            control.observe(lambda _: self._select(), "value")
        self.candidate.observe(lambda _: self._count(), "value")
        self.diff.observe(lambda _: self._render(), "value")
        self.previous.on_click(lambda _: self.turn(-1))
        self.next.on_click(lambda _: self.turn(1))

    def show(self, table: GridTable | None,
             inputs: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Show a new table (None clears the grid), from its first page."""
        self.table, self.inputs = table, inputs or {}
        if table is None:
            self.body.value, self.position.value = "", ""
            return
        self._building = True
        try:
            others = [v for v in table.variants if v != table.baseline]
            candidate = self.candidate.value if self.candidate.value in others else ""
            self.candidate.options = [("every variant", ""),
                                      *[(f"{v} vs {table.baseline}", v) for v in others]]
            self.candidate.value = candidate
            sorts = [("eval set order", "example"), ("largest spread first", "spread"),
                     (f"{table.baseline} (baseline) lowest first", "baseline"),
                     *[(f"{v} lowest first", v) for v in others]]
            sort = self.sort.value if self.sort.value in [s for _, s in sorts] else "example"
            self.sort.options = sorts
            self.sort.value = sort
        finally:
            self._building = False
        self._count()

    def _count(self) -> None:
        """Filter labels with their counts for the chosen comparison, then the rows."""
        if self.table is None:
            return
        masks = grid_masks(self.table, self.candidate.value or None)
        value = self.filter.value
        self._building = True
        try:
            self.filter.options = [(f"{f.capitalize()} ({int(masks[f].sum())})", f)
                                   for f in GRID_FILTERS]
            self.filter.value = value
        finally:
            self._building = False
        self._select()

    def turn(self, delta: int) -> None:
        """Go ``delta`` pages forward (negative: back), within the pages there are."""
        pages = max(1, math.ceil(len(self._rows) / self.page_size))
        self.page = min(pages - 1, max(0, self.page + delta))
        self._render()

    @property
    def rows(self) -> np.ndarray:
        """Positions of the filtered, sorted rows (all pages)."""
        return self._rows

    def _select(self) -> None:
        if self.table is None or self._building:
            return
        self._rows = grid_rows(self.table, self.filter.value, self.sort.value,
                               self.candidate.value or None)
        self.page = 0
        self._render()

    def _render(self) -> None:
        table = self.table
        if table is None:
            return
        total = len(self._rows)
        if not total:
            self.body.value = note(f"No example in “{self.filter.value}” for this run.", "ok")
            self.position.value = ""
            return
        start = self.page * self.page_size
        shown = self._rows[start:start + self.page_size]
        pages = math.ceil(total / self.page_size)
        self.previous.disabled, self.next.disabled = self.page == 0, self.page >= pages - 1
        self.position.value = (f"<span class='wb-muted'>&nbsp;examples {start + 1}–"
                               f"{start + len(shown)} of {total} · page {self.page + 1} of "
                               f"{pages}</span>")
        self.body.value = page_html(table, shown, diff=self.diff.value, inputs=self.inputs)
