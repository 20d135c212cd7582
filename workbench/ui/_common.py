"""Presentation helpers shared by the panels: messages, tables, charts, error boxes."""

from __future__ import annotations

import functools
import html
import io
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import ipywidgets as widgets

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

F = TypeVar("F", bound=Callable[..., Any])

# Scoped to .wb-panel so the notebook's own styles stay untouched. Every colour is one of
# JupyterLab's --jp-* variables (the hex after a comma is only a fallback outside JupyterLab),
# tinted with color-mix so the same rule reads on the light and the dark theme.
CSS = """<style>
.wb-panel {color: var(--jp-content-font-color1, black);}
.wb-panel .widget-html-content {line-height: 1.4;}
.wb-panel a {color: var(--jp-content-link-color, #0d47a1); text-decoration: underline;}
.wb-panel table.wb-table {border-collapse: collapse; font-size: 12px; margin: 4px 0;}
.wb-panel table.wb-table th, .wb-panel table.wb-table td {
  border-bottom: 1px solid var(--jp-border-color2, #e0e0e0); padding: 3px 8px;
  text-align: left; vertical-align: top; color: var(--jp-content-font-color1, black);}
.wb-panel table.wb-table th {background: var(--jp-layout-color2, #eee); font-weight: 600;}
.wb-panel .wb-note {padding: 6px 10px; border-radius: 4px; margin: 4px 0; font-size: 13px;
  line-height: 1.4; color: var(--jp-content-font-color1, black);}
.wb-panel .wb-info {background: color-mix(in srgb, var(--jp-info-color1, #0097a7) 14%,
  transparent); border-left: 4px solid var(--jp-info-color1, #0097a7);}
.wb-panel .wb-ok {background: color-mix(in srgb, var(--jp-success-color1, #388e3c) 14%,
  transparent); border-left: 4px solid var(--jp-success-color1, #388e3c);}
.wb-panel .wb-warn {background: color-mix(in srgb, var(--jp-warn-color1, #f57c00) 14%,
  transparent); border-left: 4px solid var(--jp-warn-color1, #f57c00);}
.wb-panel .wb-error {background: color-mix(in srgb, var(--jp-error-color1, #d32f2f) 14%,
  transparent); border-left: 4px solid var(--jp-error-color1, #d32f2f);}
.wb-panel .wb-msg {border: 1px solid var(--jp-border-color2, #e0e0e0); border-radius: 4px;
  margin: 3px 0; padding: 4px 6px; white-space: pre-wrap;
  font-family: var(--jp-code-font-family, monospace); font-size: 12px;}
.wb-panel .wb-role {color: var(--jp-ui-font-color2, gray); font-size: 11px;
  text-transform: uppercase;}
.wb-panel table.dataframe {border-collapse: collapse; border: none; font-size: 12px;
  margin: 4px 0;}
.wb-panel table.dataframe th, .wb-panel table.dataframe td {border: none;
  border-bottom: 1px solid var(--jp-border-color2, #e0e0e0); padding: 3px 8px;
  color: var(--jp-content-font-color1, black);}
.wb-panel table.dataframe thead th {background: var(--jp-layout-color2, #eee);}
.wb-panel .wb-scroll {max-height: 260px; overflow: auto;}
.wb-panel .wb-text {white-space: pre-wrap; overflow-wrap: anywhere;
  font-family: var(--jp-code-font-family, monospace); font-size: 12px;}
.wb-panel ins {background: color-mix(in srgb, var(--jp-success-color1, #388e3c) 30%,
  transparent); text-decoration: none;}
.wb-panel del {background: color-mix(in srgb, var(--jp-error-color1, #d32f2f) 30%,
  transparent);}
.wb-panel .wb-muted {color: var(--jp-ui-font-color2, gray); font-size: 12px;}
.wb-panel h4 {margin: 6px 0 2px 0;}
.wb-panel .wb-grid {max-height: 640px; overflow: auto;
  border: 1px solid var(--jp-border-color2, #e0e0e0);}
.wb-panel .wb-grid table.wb-table {margin: 0;}
.wb-panel .wb-grid thead th {position: sticky; top: 0; z-index: 1;
  white-space: normal; overflow-wrap: anywhere;}
.wb-panel .wb-grid th.wb-rowhead {background: var(--jp-layout-color1, white);
  font-weight: normal; overflow-wrap: anywhere; position: sticky; left: 0;}
.wb-panel .wb-grid thead th:first-child {left: 0; z-index: 2;}
.wb-panel .wb-grid td.wb-cell .wb-text {max-height: 140px; overflow: auto;}
.wb-panel .wb-grid td.wb-cell .wb-note {margin: 0;}
</style>"""

esc = html.escape


def panel_box(children: list[widgets.Widget], title: str = "") -> list[widgets.Widget]:
    """Children of a panel: the shared CSS (once per panel) and an optional title first."""
    head = CSS + (f"<h3 style='margin:4px 0'>{esc(title)}</h3>" if title else "")
    return [widgets.HTML(head), *children]


def note(text: str, kind: str = "info", *, raw: bool = False) -> str:
    """A coloured message box; ``raw`` when ``text`` is already HTML."""
    body = text if raw else esc(text).replace("\n", "<br>")
    return f'<div class="wb-note wb-{kind}">{body}</div>'


def describe_error(exc: BaseException) -> str:
    """The message a user can act on: no traceback, no repr."""
    from workbench.errors import WorkbenchError

    message = str(exc).strip()
    if isinstance(exc, WorkbenchError) and message:
        return message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def error_note(exc: BaseException, doing: str = "") -> str:
    prefix = f"Could not {doing}: " if doing else ""
    return note(prefix + describe_error(exc), "error")


def shows_errors(status_attr: str, doing: str) -> Callable[[F], F]:
    """Handler decorator: a failure lands in the panel's status box, never as a traceback
    in a log the user cannot see."""

    def wrap(func: F) -> F:
        @functools.wraps(func)
        def handler(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return func(self, *args, **kwargs)
            except Exception as exc:
                getattr(self, status_attr).value = error_note(exc, doing)
                return None

        return handler  # type: ignore[return-value]

    return wrap


def table(frame: pd.DataFrame, *, index: bool = True) -> str:
    return frame.to_html(classes="wb-table", border=0, index=index, escape=True,
                         na_rep="-")


def fmt(value: Any, decimals: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{decimals}f}"
    return str(value)


# Charts are drawn in marker colours, then each marker becomes a JupyterLab variable in the
# SVG, so a chart follows the theme (even a theme switched after it was drawn).
_INK = "#010203"
_SERIES = ("brand-color1", "warn-color1", "success-color1", "error-color1", "info-color1",
           "brand-color3")
_FALLBACKS = {"ui-font-color1": "#333333", "border-color1": "#bdbdbd", "layout-color1": "#ffffff",
              "brand-color1": "#1976d2", "warn-color1": "#f57c00", "success-color1": "#388e3c",
              "error-color1": "#d32f2f", "info-color1": "#0097a7", "brand-color3": "#64b5f6"}
_MARKERS = {_INK: "ui-font-color1", "#010204": "border-color1",
            **{f"#0102{10 + i:02x}": name for i, name in enumerate(_SERIES)},
            # the colours the statistics module's forest plot picks itself
            "#1f77b4": "brand-color1", "#2ca02c": "success-color1", "#d62728": "error-color1",
            "#ff7f0e": "warn-color1", "#7f7f7f": "ui-font-color1", "#808080": "ui-font-color1",
            "#000000": "ui-font-color1", "#ffffff": "layout-color1"}


def _themed_rc() -> dict[str, Any]:
    from cycler import cycler

    return {"text.color": _INK, "axes.labelcolor": _INK, "xtick.color": _INK,
            "ytick.color": _INK, "axes.edgecolor": "#010204", "axes.facecolor": "none",
            "figure.facecolor": "none", "savefig.facecolor": "none",
            "legend.facecolor": "none", "legend.edgecolor": "#010204",
            "grid.color": "#010204", "svg.fonttype": "none",
            "axes.prop_cycle": cycler(color=[f"#0102{10 + i:02x}" for i in range(len(_SERIES))])}


def themed_svg(draw: Callable[[], Figure]) -> str:
    """The figure ``draw()`` makes, as inline SVG whose colours are ``var(--jp-*)``, so it
    reads on any theme."""
    import re

    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context(_themed_rc()):  # ticks and labels are made while saving too
        draw().savefig(buf, format="svg")
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # the XML prolog and doctype do not belong inside HTML

    def theme(match: re.Match[str]) -> str:
        name = _MARKERS.get(match.group(0).lower())
        return f"var(--jp-{name}, {_FALLBACKS[name]})" if name else match.group(0)

    return re.sub(r"#[0-9a-fA-F]{6}\b", theme, svg)


def messages_html(messages: list[dict[str, str]]) -> str:
    return "".join(
        f'<div class="wb-msg"><div class="wb-role">{esc(m["role"])}</div>'
        f'{esc(m["content"])}</div>' for m in messages)
