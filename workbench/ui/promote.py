"""Promote panel: move an alias to a variant's registered version, on the A/B evidence.

Promoting a variant the verdict does not support, or a degenerate one (nearly constant
answers, or not above the majority-class baseline), needs a written reason; the Python API
(``workbench.promote``) enforces that and keeps the reason with the version. On a protected
alias the panel says that a request was recorded and who must approve it. Below the form,
the registry as it is now: each alias's version, the requests waiting for approval (Approve
/ Reject), Rollback and the audit log. Moving ``production`` asks for a confirmation first.
"""

from __future__ import annotations

import getpass
from typing import Any

import ipywidgets as widgets

from ._common import error_note, esc, note, panel_box, shows_errors
from ._registry_view import Confirm, RegistryView, needs_confirmation
from ._session import Session, as_session
from ._text import template_to_text


class PromotePanel(widgets.VBox):
    """Choose the version and alias, see the verdict and the registry, promote, approve,
    reject, roll back."""

    def __init__(self, source: Any, *, approver: str | None = None, **kwargs: Any) -> None:
        self.session: Session = as_session(source)
        self._degenerate: dict[str, str] = {}  # variant -> why, for the report shown
        style = {"description_width": "80px"}
        self.verdict = widgets.HTML()
        self.variant = widgets.Dropdown(description="Version", style=style,
                                        layout=widgets.Layout(width="520px"))
        self.version_text = widgets.HTML()
        self.alias = widgets.Combobox(value="production", options=["production", "staging"],
                                      ensure_option=False, description="Alias", style=style)
        self.approver = widgets.Text(value=approver or getpass.getuser(),
                                     description="Approver", style=style)
        self.reason = widgets.Textarea(description="Reason", style=style, rows=2,
                                       layout=widgets.Layout(width="100%"))
        self.hint = widgets.HTML()
        self.promote_button = widgets.Button(description="Promote", button_style="danger",
                                             icon="arrow-up")
        self.confirm = Confirm()
        self.status = widgets.HTML()
        self.registry = RegistryView(self.approver, changed=self._after_move)
        super().__init__(panel_box([
            self.verdict, self.variant, self.version_text,
            widgets.HBox([self.alias, self.approver]), self.reason, self.hint,
            self.promote_button, self.confirm, self.status, self.registry], "Promote"),
            **kwargs)
        self.add_class("wb-panel")
        self.variant.observe(lambda _: self._refresh_hint(), "value")
        self.variant.observe(lambda _: self._refresh_version_text(), "value")
        self.alias.observe(lambda _: self._refresh_hint(), "value")
        self.promote_button.on_click(lambda _: self.promote())
        self.session.observe(lambda _: self._rebuild(), "report")
        self.session.observe(lambda _: self._refresh_registry(), "experiment")
        self._rebuild()

    # ---- public action --------------------------------------------------------------------
    @property
    def history(self) -> widgets.HTML:
        """The registry's audit log, newest first."""
        return self.registry.history

    @shows_errors("status", "promote")
    def promote(self) -> Any:
        """Promote what the form says; moving ``production`` asks for a confirmation first
        (then the Confirm button promotes, and this returns None)."""
        from workbench.prompts.policy import load_policy
        from workbench.prompts.promotion import check_promotion

        report = self.session.report
        if report is None:
            self.status.value = note("Run and compare two variants first.", "warn")
            return None
        alias, reason = self.alias.value.strip(), self.reason.value.strip()
        results, chosen, _ = check_promotion(report, variant=self.variant.value,
                                             reason=reason or None)
        policy = load_policy()
        policy.check_alias(alias)
        if needs_confirmation(alias) and not policy.requires_approval(alias):
            from workbench.prompts.registry import alias_version

            current = alias_version(results.registry_name, alias)
            version = results.prompt_versions[chosen]
            if current != version:
                moved = f"from v{current} " if current is not None else ""
                self.status.value = ""
                self.confirm.ask(
                    f"Move <b>@{esc(alias)}</b> of {esc(results.registry_name)} {moved}to "
                    f"v{version} (<b>{esc(chosen)}</b>)? Serving picks it up within its "
                    "refresh interval.", self._promote_now)
                return None
        return self._promote_now()

    @shows_errors("status", "promote")
    def _promote_now(self) -> Any:
        from workbench.prompts.promotion import promote

        report = self.session.report
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
                f"has not moved; someone other than {esc(outcome.requester)} approves it "
                "below (Requests waiting for approval) or with "
                f"<code>workbench approve {esc(outcome.name)} --alias {esc(alias)} --version "
                f"{outcome.version} --approver NAME</code>.{kept}", "warn", raw=True)
        self._refresh_registry()
        return outcome

    # ---- building -------------------------------------------------------------------------
    def _rebuild(self) -> None:
        report, results = self.session.report, self.session.results
        if report is None or results is None:
            self.verdict.value = note("Run the experiment and compare two variants (A/B tab) "
                                      "to promote one.", "info")
            self.promote_button.disabled = True
            self.version_text.value = ""
            self._refresh_registry()
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
        self._refresh_version_text()
        self._refresh_registry()

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

    def _refresh_version_text(self) -> None:
        """The full template (and model) of the chosen version, as the registry holds it."""
        from workbench.prompts.versions import load

        results = self.session.results
        name = self.variant.value
        if results is None or name is None or name not in results.prompt_versions:
            self.version_text.value = ""
            return
        version = results.prompt_versions[name]
        try:
            found = load(results.registry_name, version=version)
        except Exception as exc:
            self.version_text.value = error_note(exc, f"load v{version}")
            return
        model = f" · model {esc(found.model.model)}" if found.model else ""
        self.version_text.value = (
            f"<div class='wb-muted'>{esc(found.uri)}{model}</div>"
            f"<div class='wb-msg wb-scroll wb-version-text'>"
            f"{esc(template_to_text(found.template.template))}</div>")

    def _after_move(self) -> None:
        """An approval or rollback below: the note about an earlier request is history now."""
        self.status.value = ""
        self._refresh_registry()

    def _refresh_registry(self) -> None:
        results, exp = self.session.results, self.session.experiment
        name = results.registry_name if results is not None else (
            exp.spec.prompt_registry_name if exp is not None else None)
        self.registry.show(name)
        policy = self.registry.policy
        if policy is not None and list(self.alias.options) != list(policy.aliases):
            self.alias.options = list(policy.aliases)
