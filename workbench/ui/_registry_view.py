"""The registry side of the Promote tab: where each alias points, requests waiting for
approval (Approve / Reject), Rollback and the audit log of one registered prompt.

It needs only the prompt's name, so someone approving another person's request does not
have to run the experiment first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from ._common import error_note, esc, note, table

CONFIRMED_ALIASES = ("production",)  # moving these asks for a confirmation first


class Confirm(widgets.VBox):
    """A "really do this?" step: hidden until ``ask``; Confirm runs the action once."""

    def __init__(self) -> None:
        self.question = widgets.HTML()
        self.yes = widgets.Button(description="Confirm", button_style="danger", icon="check")
        self.no = widgets.Button(description="Cancel", icon="times")
        self._action: Callable[[], Any] | None = None
        super().__init__([self.question, widgets.HBox([self.yes, self.no])])
        self.add_class("wb-confirm")
        self.layout.display = "none"
        self.yes.on_click(lambda _: self._answer(True))
        self.no.on_click(lambda _: self._answer(False))

    @property
    def waiting(self) -> bool:
        return self._action is not None

    def ask(self, question_html: str, action: Callable[[], Any]) -> None:
        self.question.value = note(question_html, "warn", raw=True)
        self._action = action
        self.layout.display = None

    def _answer(self, yes: bool) -> None:
        action, self._action = self._action, None
        self.layout.display = "none"
        if yes and action is not None:
            action()


def needs_confirmation(alias: str) -> bool:
    return alias in CONFIRMED_ALIASES


class RegistryView(widgets.VBox):
    """Aliases now, pending requests, rollback and history of the prompt ``name``.

    ``actor`` is the widget naming the person acting (the Promote tab's Approver field);
    ``changed`` is called after every move so the tab can refresh what depends on it.
    """

    def __init__(self, actor: widgets.Text, changed: Callable[[], None] | None = None) -> None:
        self.name: str | None = None
        self.policy: Any = None  # the project's Policy, once read
        self.actor = actor
        self._changed = changed or (lambda: None)
        self.aliases = widgets.HTML()
        self.pending = widgets.VBox()
        self.review_reason = widgets.Text(description="Review note", placeholder=(
            "why (required to reject; kept with an approval)"),
            style={"description_width": "80px"}, layout=widgets.Layout(width="100%"))
        self.review_confirm = Confirm()
        self.review_status = widgets.HTML()
        self.rollback_alias = widgets.Dropdown(description="Roll back",
                                               style={"description_width": "80px"})
        self.rollback_button = widgets.Button(description="to the version before", icon="undo",
                                              button_style="warning",
                                              layout=widgets.Layout(width="auto"))
        self.rollback_confirm = Confirm()
        self.rollback_status = widgets.HTML()
        self.history = widgets.HTML()
        self.approve_buttons: dict[tuple[str, int], widgets.Button] = {}
        self.reject_buttons: dict[tuple[str, int], widgets.Button] = {}
        super().__init__([
            widgets.HTML("<h4>Aliases now</h4>"), self.aliases,
            widgets.HTML("<h4>Requests waiting for approval</h4>"), self.pending,
            self.review_reason, self.review_confirm, self.review_status,
            widgets.HTML("<h4>Rollback</h4>"),
            widgets.HBox([self.rollback_alias, self.rollback_button]),
            self.rollback_confirm, self.rollback_status,
            widgets.HTML("<h4>Registry history</h4>"), self.history])
        self.rollback_button.on_click(lambda _: self.ask_rollback())

    # ---- actions ---------------------------------------------------------------------------
    def approve(self, alias: str, version: int) -> Any:
        """Approve the pending request (the Approve button; asks first for production)."""
        if needs_confirmation(alias):
            self.review_confirm.ask(
                f"Approve and move <b>@{esc(alias)}</b> of {esc(str(self.name))} "
                f"{self._from_to(alias, version)}? Serving picks it up within its refresh "
                "interval.", lambda: self._approve(alias, version))
            return None
        return self._approve(alias, version)

    def reject(self, alias: str, version: int) -> Any:
        """Turn the pending request down with the reason typed above the buttons."""
        from workbench.prompts import registry

        try:
            request = registry.reject(self.name, alias, version=version,
                                      reason=self.review_reason.value.strip(),
                                      approver=self._actor())
        except Exception as exc:
            self.review_status.value = error_note(exc, "reject the request")
            return None
        self.review_status.value = note(
            f"Rejected v{version} → @{alias} requested by {request.requester}.", "ok")
        self.review_reason.value = ""
        self.refresh()
        return request

    def ask_rollback(self) -> None:
        """Say where the alias would go back to, then roll back (asks first for production)."""
        from workbench.prompts import registry

        alias = self.rollback_alias.value
        try:
            current, target = registry.rollback_target(self.name, alias)
        except Exception as exc:
            self.rollback_status.value = error_note(exc, "roll back")
            return
        if needs_confirmation(alias):
            self.rollback_confirm.ask(
                f"Roll <b>@{esc(alias)}</b> of {esc(str(self.name))} back from "
                f"v{current} to v{target}?", lambda: self._rollback(alias))
        else:
            self._rollback(alias)

    # ---- building --------------------------------------------------------------------------
    def show(self, name: str | None) -> None:
        self.name = name
        self.refresh()

    def refresh(self) -> None:
        from workbench.prompts import registry

        if self.name is None:
            self.aliases.value = note("No prompt registry name yet: load an experiment.",
                                      "info")
            return
        try:
            self.policy = policy = registry.load_policy()
            history = registry.history(self.name)
            pending = registry.pending_requests(self.name)
        except Exception as exc:
            text = str(exc)
            if "no prompt named" in text or "not found" in text.lower():
                self.aliases.value = note(
                    f"Nothing registered as {self.name} yet: a tracked run registers each "
                    "variant's prompt version.", "info")
            else:
                self.aliases.value = error_note(exc, "read the registry")
            self.pending.children, self.history.value = (), ""
            return
        keep = self.rollback_alias.value
        if list(self.rollback_alias.options) != list(policy.aliases):
            self.rollback_alias.options = list(policy.aliases)
        aliases = list(policy.aliases)
        self.rollback_alias.value = keep if keep in aliases else (
            "production" if "production" in aliases else aliases[0])
        self.aliases.value = _aliases_html(self.name, policy, history)
        self._show_pending(pending)
        self.history.value = _history_html(history)

    def _show_pending(self, pending: list[Any]) -> None:
        self.approve_buttons, self.reject_buttons, rows = {}, {}, []
        for request in pending:
            key = (request.alias, request.version)
            approve = widgets.Button(description="Approve", button_style="success",
                                     icon="check", layout=widgets.Layout(width="auto"))
            reject = widgets.Button(description="Reject", icon="times",
                                    layout=widgets.Layout(width="auto"))
            approve.on_click(lambda _, k=key: self.approve(*k))
            reject.on_click(lambda _, k=key: self.reject(*k))
            self.approve_buttons[key], self.reject_buttons[key] = approve, reject
            run = _run_link(request.evidence.get("run_id", ""))
            detail = (f"<b>v{request.version} → @{esc(request.alias)}</b>"
                      f" ({esc(request.evidence.get('variant', ''))}) requested by "
                      f"<b>{esc(request.requester)}</b> at {_when(request.at)}"
                      + (f": “{esc(request.reason)}”" if request.reason else "")
                      + (f"<br><span class='wb-muted'>{esc(request.evidence['verdict'])}"
                         f"{' · ' + run if run else ''}</span>"
                         if request.evidence.get("verdict") else ""))
            rows.append(widgets.HBox([widgets.HTML(detail, layout=widgets.Layout(
                flex="1 1 auto")), approve, reject], layout=widgets.Layout(
                    border_bottom="1px solid var(--jp-border-color2, #ddd)",
                    align_items="center")))
        if not rows:
            rows = [widgets.HTML(note("No request is waiting.", "info"))]
        self.pending.children = rows

    def _approve(self, alias: str, version: int) -> Any:
        from workbench.prompts import registry

        try:
            moved = registry.approve(self.name, alias, version=version, approver=self._actor(),
                                     reason=self.review_reason.value.strip() or None)
        except Exception as exc:
            self.review_status.value = error_note(exc, "approve")
            return None
        self.review_status.value = note(
            f"Approved: @{esc(alias)} now points at v{moved.version} ({esc(moved.uri)}).",
            "ok", raw=True)
        self.review_reason.value = ""
        self.refresh()
        self._changed()
        return moved

    def _rollback(self, alias: str) -> Any:
        from workbench.prompts import registry

        try:
            moved = registry.rollback(self.name, alias, actor=self._actor())
        except Exception as exc:
            self.rollback_status.value = error_note(exc, "roll back")
            return None
        self.rollback_status.value = note(
            f"Rolled back: @{esc(alias)} now points at v{moved.version}.", "ok", raw=True)
        self.refresh()
        self._changed()
        return moved

    def _actor(self) -> str | None:
        return self.actor.value.strip() or None

    def _from_to(self, alias: str, version: int) -> str:
        from workbench.prompts import registry

        current = registry.alias_version(self.name, alias)
        return f"from v{current} to v{version}" if current else f"to v{version}"


def _aliases_html(name: str, policy: Any, history: Any) -> str:
    """One row per alias of the policy: the version it holds, its variant, who moved it."""
    from workbench.prompts import registry

    moves = history[history["action"].isin(["promotion", "rollback"])]
    rows = []
    for alias in policy.aliases:
        version = registry.alias_version(name, alias)
        last = moves[moves["alias"] == alias].tail(1)
        variant = by = since = "-"
        if version is not None:
            try:
                variant = registry.load(name, version=version).tags.get(
                    registry.VARIANT_TAG, "-")
            except Exception:  # noqa: BLE001  (the row still says which version)
                variant = "?"
            if len(last) and int(last.iloc[0]["version"]) == version:
                row = last.iloc[0]
                by, since = f"{row['actor']} ({row['action']})", _when(row["at"])
            else:
                by = "set outside the workbench"
        rows.append({"alias": f"@{alias}" + (" (protected)" if policy.requires_approval(alias)
                                               else ""),
                     "version": f"v{version}" if version is not None else "not set",
                     "variant": variant, "since": since, "by": by})
    import pandas as pd

    return table(pd.DataFrame(rows), index=False)


def _history_html(history: Any) -> str:
    if len(history) == 0:
        return note("Nothing requested or promoted yet.", "info")
    shown = history.copy().iloc[::-1]  # newest first
    shown["at"] = [_when(at) for at in shown["at"]]
    shown["evidence"] = shown["evidence"].map(_short)
    shown["reason"] = shown["reason"].map(lambda r: r if isinstance(r, str) else "-")
    return f"<div class='wb-scroll'>{table(shown, index=False)}</div>"


def _run_link(run_id: str) -> str:
    """The evidence run as a link into the MLflow UI that shows this store."""
    from workbench.tracking import run_url

    if not run_id:
        return ""
    return (f'<a href="{esc(run_url(run_id))}" target="_blank">run {esc(run_id[:8])}</a>')


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if hasattr(value, "strftime") else str(value)


def _short(value: Any) -> str:
    if isinstance(value, dict):
        value = ", ".join(f"{k}={v}" for k, v in value.items() if k != "verdict")
    text = str(value or "")
    return text if len(text) <= 80 else text[:77] + "…"
