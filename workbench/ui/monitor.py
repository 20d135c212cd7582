"""Monitor panel: a served prompt's online quality against its offline estimate, people's
feedback, guard hits and the drift canary's history. It only reads ``workbench.monitor``."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ._common import note, panel_box, shows_errors, table


class MonitorPanel(widgets.VBox):
    """``MonitorPanel("support-triage")``; Refresh reads the stores again."""

    def __init__(self, prompt: str, *, since: str = "7d", alias: str = "production",
                 **kwargs: Any) -> None:
        self.prompt, self.alias = prompt, alias
        self.since = widgets.Dropdown(options=["24h", "7d", "30d"], value=since,
                                      description="Since")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.status = widgets.HTML()
        self.quality = widgets.HTML()
        self.feedback = widgets.HTML()
        self.guards = widgets.HTML()
        self.canary = widgets.HTML()
        super().__init__(panel_box([
            widgets.HBox([self.since, self.refresh_button]), self.status,
            widgets.HTML("<h4>Online quality vs offline</h4>"), self.quality,
            widgets.HTML("<h4>Feedback</h4>"), self.feedback,
            widgets.HTML("<h4>Guard hits</h4>"), self.guards,
            widgets.HTML("<h4>Canary runs</h4>"), self.canary],
            f"Monitor: {prompt}@{alias}"), **kwargs)
        self.add_class("wb-panel")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.since.observe(lambda _: self.refresh(), "value")
        self.refresh()

    @shows_errors("status", "read the monitor's stores")
    def refresh(self) -> None:
        from workbench import monitor
        from workbench.monitor.canary import history

        since = self.since.value
        quality = monitor.quality(self.prompt, since=since, alias=self.alias)
        self.quality.value = (table(quality, index=False) if len(quality) else
                              note("No online scores yet: serve with monitor={...}."))
        served = monitor.requests(self.prompt, since=since)
        labels = served["feedback"].dropna() if len(served) else []
        self.feedback.value = note(
            f"{len(served)} requests stored, {len(labels)} with feedback"
            + (f", mean {labels.mean():.2f} (0 bad, 1 good)" if len(labels) else ""))
        hits = monitor.guard_hits(since=since)
        hits = hits[hits["prompt"] == self.prompt] if len(hits) else hits
        self.guards.value = table(hits, index=False) if len(hits) else note("No guard hits.")
        runs = history(self.prompt, max_results=20)
        self.canary.value = (table(runs.drop(columns=["run_id"]), index=False) if len(runs)
                             else note(f"No canary runs: run `workbench canary` for "
                                       f"{self.prompt}."))
        self.status.value = ""
