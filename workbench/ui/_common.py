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

# Scoped to .wb-panel so the notebook's own styles stay untouched.
CSS = """<style>
.wb-panel .widget-html-content {line-height: 1.4;}
.wb-panel a {color: #1a6fc9; text-decoration: underline;}
.wb-panel table.dataframe {border-collapse: collapse; border: none; font-size: 12px;
  margin: 4px 0;}
.wb-panel table.dataframe th, .wb-panel table.dataframe td {border: none;
  border-bottom: 1px solid #ddd; padding: 3px 8px;}
.wb-panel table.dataframe thead th {background: #f3f4f6;}
.wb-panel table.wb-table {border-collapse: collapse; font-size: 12px; margin: 4px 0;}
.wb-panel table.wb-table th, .wb-panel table.wb-table td {
  border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top;}
.wb-panel table.wb-table th {background: #f3f4f6; font-weight: 600;}
.wb-panel .wb-note {padding: 6px 10px; border-radius: 4px; margin: 4px 0; font-size: 13px;
  line-height: 1.4;}
.wb-panel .wb-info {background: #eef4fb; border-left: 4px solid #4a90d9;}
.wb-panel .wb-ok {background: #edf7ee; border-left: 4px solid #3c9a4a;}
.wb-panel .wb-warn {background: #fdf6e7; border-left: 4px solid #d49b1f;}
.wb-panel .wb-error {background: #fbeeee; border-left: 4px solid #c9443c;}
.wb-panel .wb-msg {border: 1px solid #e0e0e0; border-radius: 4px; margin: 3px 0;
  padding: 4px 6px; white-space: pre-wrap; font-family: var(--jp-code-font-family, monospace);
  font-size: 12px;}
.wb-panel .wb-role {color: #666; font-size: 11px; text-transform: uppercase;}
.wb-panel .wb-scroll {max-height: 260px; overflow: auto;}
.wb-panel .wb-text {white-space: pre-wrap; font-family: var(--jp-code-font-family, monospace);
  font-size: 12px;}
.wb-panel ins {background: #d4f5d9; text-decoration: none;}
.wb-panel del {background: #fbd5d5;}
.wb-panel .wb-muted {color: #666; font-size: 12px;}
.wb-panel h4 {margin: 6px 0 2px 0;}
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


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def messages_html(messages: list[dict[str, str]]) -> str:
    return "".join(
        f'<div class="wb-msg"><div class="wb-role">{esc(m["role"])}</div>'
        f'{esc(m["content"])}</div>' for m in messages)
