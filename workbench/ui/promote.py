"""Promote panel: move an alias to a variant's registered version, on the A/B evidence.

Promoting a variant the verdict does not support, or a degenerate one (nearly constant
answers, or not above the majority-class baseline), needs a written reason; the Python API
(``workbench.promote``) enforces that and keeps the reason with the version. On a protected
alias the panel says that a request was recorded and who must approve it.
"""

from __future__ import annotations

import getpass
from typing import Any

import ipywidgets as widgets

from ._common import error_note, esc, note, panel_box, shows_errors, table
from ._session import Session, as_session


class PromotePanel(widgets.VBox):
    """Choose the version and alias, see the verdict and the registry's history, promote."""

    def __init__(self, source: Any, *, approver: str | None = None, **kwargs: Any) -> None:
        self.session: Session = as_session(source)
        self._degenerate: dict[str, str] = {}  # variant -> why, for the report shown
        style = {"description_width": "80px"}
        self.verdict = widgets.HTML()
        self.variant = widgets.Dropdown(description="Version", style=style,
                                        layout=widgets.Layout(width="420px"))
        self.alias = widgets.Combobox(value="production", options=["production", "staging"],
                                      ensure_option=False, description="Alias", style=style)
        self.approver = widgets.Text(value=approver or getpass.getuser(),
                                     description="Approver", style=style)
        self.reason = widgets.Textarea(description="Reason", style=style, rows=2,
                                       layout=widgets.Layout(width="100%"))
        self.hint = widgets.HTML()
        self.promote_button = widgets.Button(description="Promote", button_style="danger",
                                             icon="arrow-up")
        self.status = widgets.HTML()
        self.history = widgets.HTML()
        super().__init__(panel_box([
            self.verdict, self.variant, widgets.HBox([self.alias, self.approver]),
            self.reason, self.hint, self.promote_button, self.status,
            widgets.HTML("<h4>Registry history</h4>"), self.history], "Promote"), **kwargs)
        self.add_class("wb-panel")
        self.variant.observe(lambda _: self._refresh_hint(), "value")
        self.alias.observe(lambda _: self._refresh_hint(), "value")
        self.promote_button.on_click(lambda _: self.promote())
        self.session.observe(lambda _: self._rebuild(), "report")
        self._rebuild()

    # ---- public action --------------------------------------------------------------------
    @shows_errors("status", "promote")
    def promote(self) -> Any:
        """Call ``workbench.promote`` with what the form says; returns the promoted version."""
        from workbench.prompts.promotion import promote

        report = self.session.report
        if report is None:
            self.status.value = note("Run and compare two variants first.", "warn")
            return None
        alias, reason = self.alias.value.strip(), self.reason.value.strip()
        outcome = promote(report, alias=alias, approver=self.approver.value.strip() or None,
                          variant=self.variant.value, reason=reason or None)
        kept = f" Reason kept: “{esc(reason)}”." if reason else ""
        if outcome.promoted:
            self.status.value = note(
                f"Promoted <b>{esc(self.variant.value)}</b> ({esc(outcome.uri)}) to "
                f"<b>@{esc(alias)}</b>.{kept}", "ok", raw=True)
        else:  # a protected alias: the request waits for a second person
            self.status.value = note(
                f"Request recorded, approval needed: <b>{esc(self.variant.value)}</b> "
                f"({esc(outcome.uri)}) → <b>@{esc(alias)}</b>. @{esc(alias)} is protected and "
                f"has not moved; someone other than {esc(outcome.requester)} approves with "
                f"<code>workbench approve {esc(outcome.name)} --alias {esc(alias)} --version "
                f"{outcome.version} --approver NAME</code>.{kept}", "warn", raw=True)
        self._refresh_history()
        return outcome

    # ---- building -------------------------------------------------------------------------
    def _rebuild(self) -> None:
        report, results = self.session.report, self.session.results
        if report is None or results is None:
            self.verdict.value = note("Run the experiment and compare two variants (A/B tab) "
                                      "to promote one.", "info")
            self.promote_button.disabled = True
            self.history.value = ""
            return
        self.promote_button.disabled = False
        first = esc(report.verdict.splitlines()[0]) if report.verdict else ""
        self._degenerate = results.degenerate(alpha=report.alpha)
        caveats = "".join(f"<br><b>Caveat</b>: {esc(c)}" for c in report.caveats)
        kind = "ok" if report.winner and report.winner not in self._degenerate else "warn"
        self.verdict.value = note(f"<b>Verdict</b> ({esc(' vs '.join(report.variants))}): "
                                  f"{first}{caveats}", kind, raw=True)
        versions = results.prompt_versions
        options = []
        for name in report.variants:
            version = f"v{versions[name]}" if name in versions else "not registered"
            tag = " — favoured by the verdict" if name == report.winner else ""
            tag += " — degenerate" if name in self._degenerate else ""
            options.append((f"{name} ({results.registry_name} {version}){tag}", name))
        self.variant.options = options
        self.variant.value = report.winner or report.variants[-1]
        self._refresh_hint()
        self._refresh_history()

    def _refresh_hint(self) -> None:
        report = self.session.report
        if report is None or self.variant.value is None:
            return
        flagged = self._degenerate.get(self.variant.value)
        if flagged:
            self.hint.value = note(
                f"{self.variant.value} is degenerate: {flagged}. "
                "To promote it anyway, write the reason; it is kept in the registry's audit "
                "log.", "warn")
        elif self.variant.value == report.winner:
            self.hint.value = note("The verdict supports this promotion; a reason is "
                                   "optional.", "ok")
        else:
            self.hint.value = note(
                f"The verdict does not favour {self.variant.value}: write the reason for "
                "promoting it anyway. It is kept with the version in the registry.", "warn")

    def _refresh_history(self) -> None:
        from workbench.prompts import registry

        results = self.session.results
        if not hasattr(registry, "history"):
            self.history.value = note("The registry's history (workbench.registry.history) "
                                      "is not in this installation yet.", "info")
            return
        try:
            frame = registry.history(results.registry_name)
        except Exception as exc:
            self.history.value = error_note(exc, "read the registry history")
            return
        if len(frame) == 0:
            self.history.value = note(f"Nothing promoted in {results.registry_name} yet.",
                                      "info")
            return
        shown = frame.copy()
        if "at" in shown:
            shown["at"] = [_when(at) for at in shown["at"]]
        if "evidence" in shown:
            shown["evidence"] = shown["evidence"].map(_short)
        self.history.value = f"<div class='wb-scroll'>{table(shown, index=False)}</div>"


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if hasattr(value, "strftime") else str(value)


def _short(value: Any) -> str:
    if isinstance(value, dict):
        value = ", ".join(f"{k}={v}" for k, v in value.items() if k != "verdict")
    text = str(value or "")
    return text if len(text) <= 80 else text[:77] + "…"
