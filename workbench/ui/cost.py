"""Cost panel: what the models cost and how fast they answer, from the usage ledger.

Cost over time with the cost alerts marked, the top applications, users or request types,
latency percentiles per step, throughput and average concurrency, the alerts (each can be
acknowledged) and the savings advice; a model downgrade no A/B backs yet can be written
as a ready A/B folder from the stored traffic (``observe.ab_from_traffic``) with one
click. It only reads ``workbench.observe``; the chart is an
SVG whose colours are JupyterLab's theme variables, so it follows a dark theme too.
"""

from __future__ import annotations

import io
from typing import Any

import ipywidgets as widgets

from ._common import error_note, esc, note, panel_box, shows_errors

# Scoped to .wb-cost; colours from JupyterLab's theme, with light-theme fallbacks.
CSS = """<style>
.wb-cost table.wb-ctable {border-collapse: collapse; font-size: 12px; margin: 4px 0;
  color: var(--jp-ui-font-color1, #222);}
.wb-cost table.wb-ctable th, .wb-cost table.wb-ctable td {padding: 3px 8px; text-align: left;
  border-bottom: 1px solid var(--jp-border-color2, #ddd);}
.wb-cost table.wb-ctable th {background: var(--jp-layout-color2, #f3f4f6);}
.wb-cost .wb-figure {font-size: 12px; color: var(--jp-ui-font-color1, #222);}
.wb-cost .wb-acked {color: var(--jp-ui-font-color3, #888);}
</style>"""

# matplotlib draws with these placeholders; the SVG then asks the theme for the colour
_THEME = {"#010101": "var(--jp-brand-color1, #1976d2)",
          "#020202": "var(--jp-error-color1, #d32f2f)",
          "#030303": "var(--jp-ui-font-color1, #222)",
          "#040404": "var(--jp-border-color1, #bbb)"}
WINDOWS = {"24 hours": ("24h", 3600.0), "7 days": ("7d", 3600.0), "30 days": ("30d", 86400.0)}


class CostPanel(widgets.VBox):
    """The ledger's cost, latency, alerts and savings advice; ``store`` defaults to the
    project's ledger (``observe.default_ledger()``)."""

    def __init__(self, *, store: Any = None, window: str = "7 days", **kwargs: Any) -> None:
        self._store = store
        self.window = widgets.Dropdown(options=list(WINDOWS), value=window,
                                       description="window")
        self.group = widgets.Dropdown(options=["application", "user", "request_type",
                                               "model"], value="application",
                                      description="top by")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.chart = widgets.HTML()
        self.top = widgets.HTML()
        self.latency = widgets.HTML()
        self.throughput = widgets.HTML()
        self.alerts = widgets.HTML()
        self.alert_choice = widgets.Dropdown(options=[], description="alert",
                                             layout=widgets.Layout(width="60%"))
        self.ack_button = widgets.Button(description="Acknowledge", icon="check")
        self.advice = widgets.HTML()
        self.offer_choice = widgets.Dropdown(options=[], description="A/B",
                                             layout=widgets.Layout(width="60%"))
        self.ab_button = widgets.Button(description="Create A/B", icon="flask",
                                        tooltip="write the downgrade A/B from stored traffic")
        self.ab_status = widgets.HTML()
        self.status = widgets.HTML()
        self.refresh_button.on_click(lambda _: self.refresh())
        self.ack_button.on_click(lambda _: self.acknowledge())
        self.ab_button.on_click(lambda _: self.create_ab())
        self.window.observe(lambda _: self.refresh(), names="value")
        self.group.observe(lambda _: self.refresh(), names="value")
        body = [widgets.HTML(CSS), widgets.HBox([self.window, self.group,
                                                  self.refresh_button]),
                self.status, self.chart, self.throughput, self.top, self.latency,
                widgets.HTML("<h4>Alerts</h4>"), self.alerts,
                widgets.HBox([self.alert_choice, self.ack_button]),
                widgets.HTML("<h4>Savings</h4>"), self.advice,
                widgets.HBox([self.offer_choice, self.ab_button]), self.ab_status]
        super().__init__(panel_box(body, "Cost and latency"), **kwargs)
        self.add_class("wb-panel")
        self.add_class("wb-cost")
        self.refresh()

    def store(self) -> Any:
        if self._store is None:
            from workbench.observe import default_ledger

            self._store = default_ledger().store()
        return self._store

    @shows_errors("status", "read the usage ledger")
    def refresh(self) -> None:
        from workbench.observe import queries

        since, every = WINDOWS[self.window.value]
        store = self.store()
        usage = queries.usage(store, since, by=self.group.value)
        self.status.value = "" if len(usage) else note(
            f"No calls in the last {self.window.value}: serve or run something first.")
        found = self._alerts(store, since)
        self.chart.value = _chart(queries.series(store, since, every), found)
        self.throughput.value = _throughput(queries.series(store, since, 60.0))
        self.top.value = _top(usage.head(10), self.group.value)
        self.latency.value = _latency(queries.latency(store, since, by="step"))
        self.advice.value = self._advice(store)

    def _alerts(self, store: Any, since: str) -> list[Any]:
        from workbench.observe import alerting

        try:
            found = alerting.with_recorded(store, since, alerting.check(store, since))
        except Exception as exc:  # too little history is no alert, not a broken panel
            self.alerts.value = error_note(exc, "check for alerts")
            return []
        acked = alerting.acknowledged(store, [a.alert_id for a in found])
        rows = "".join(
            f"<tr class='{'wb-acked' if a.alert_id in acked else ''}'><td>{esc(a.kind)}</td>"
            f"<td>{esc(a.key)}</td><td>{esc(a.as_dict()['start'])}</td>"
            f"<td>{a.expected:.4g} → {a.observed:.4g} {esc(a.unit)}</td>"
            f"<td>{esc('acknowledged by ' + acked[a.alert_id]) if a.alert_id in acked else ''}"
            "</td></tr>" for a in reversed(found))
        self.alerts.value = (
            "<table class='wb-ctable'><tr><th>kind</th><th>where</th><th>from</th>"
            f"<th>expected → observed</th><th></th></tr>{rows}</table>" if found
            else note("No alerts in the window.", "ok"))
        self.alert_choice.options = [(f"{a.kind} at {a.key}", a.alert_id)
                                     for a in reversed(found) if a.alert_id not in acked]
        return found

    @shows_errors("status", "acknowledge the alert")
    def acknowledge(self) -> None:
        from workbench.observe import alerting

        if not self.alert_choice.value:
            self.status.value = note("Choose an alert to acknowledge.", "warn")
            return
        alerting.acknowledge(self.store(), self.alert_choice.value)
        self.refresh()

    def _advice(self, store: Any) -> str:
        from workbench.observe import savings

        try:
            found = savings.recommend(store, WINDOWS[self.window.value][0])
        except Exception as exc:
            return error_note(exc, "work out savings")
        offers = [(f"{r.offer['request_type']} requests of {r.offer['prompt']} on "
                   f"{r.offer['cheaper_model']}",
                   (r.offer["prompt"], r.offer["request_type"], r.offer["cheaper_model"]))
                  for r in found if r.offer is not None]
        self.offer_choice.options = offers
        self.offer_choice.value = offers[0][1] if offers else None
        if not found:
            return note("No savings advice for this window.", "ok")
        rows = "".join(f"<tr><td>{esc(r.kind)}</td><td>{esc(r.key)}</td>"
                       f"<td>${r.monthly_savings_usd:,.2f}</td><td>{esc(r.detail)}</td></tr>"
                       for r in found)
        return ("<table class='wb-ctable'><tr><th>advice</th><th>for</th>"
                f"<th>a month</th><th>why</th></tr>{rows}</table>")

    @shows_errors("ab_status", "create the A/B")
    def create_ab(self) -> None:
        """Write the chosen downgrade A/B and say where it is and what to do with it."""
        from workbench.observe.abtest import ab_from_traffic

        if not self.offer_choice.value:
            self.ab_status.value = note("No downgrade A/B is offered in this window.", "warn")
            return
        prompt, request_type, cheaper = self.offer_choice.value
        folder = ab_from_traffic(prompt, request_type, cheaper,
                                 since=WINDOWS[self.window.value][0])
        self.ab_status.value = note(
            f"Wrote the A/B to {folder}. Run it (workbench run {folder}); when its verdict "
            f"says {cheaper} is non-inferior, cite its parent run as the evidence of a "
            f"routing rule for {request_type!r} requests in workbench.yaml.", "ok")


def _chart(series: Any, alerts: list[Any]) -> str:
    """Cost per period as an SVG line, cost alerts as red bands."""
    if series.empty:
        return ""
    from datetime import UTC, datetime

    from matplotlib.figure import Figure  # not pyplot: the notebook's backend stays as it is

    when = [datetime.fromtimestamp(t, UTC) for t in series["start"]]
    fig = Figure(figsize=(8, 2.4))
    ax = fig.subplots()
    ax.plot(when, series["cost"], color="#010101", linewidth=1.5)
    for alert in alerts:
        if alert.kind == "cost":
            ax.axvspan(datetime.fromtimestamp(alert.start, UTC),
                       datetime.fromtimestamp(max(alert.end, alert.start + 1800), UTC),
                       color="#020202", alpha=0.25, linewidth=0)
    ax.set_ylabel("USD", color="#030303")
    ax.tick_params(colors="#030303", labelsize=8)
    for spine in ax.spines.values():
        spine.set_color("#040404")
    fig.patch.set_alpha(0)
    ax.set_facecolor("none")
    fig.autofmt_xdate()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]
    for placeholder, colour in _THEME.items():
        svg = svg.replace(placeholder, colour)
    return f"<div class='wb-figure'>{svg}</div>"


def _throughput(minutes: Any) -> str:
    if minutes.empty:
        return ""
    peak = minutes.loc[minutes["calls"].idxmax()]
    busiest = minutes.loc[minutes["busy_s"].idxmax()]
    return note(
        f"Throughput: {minutes['calls'].sum() / max(len(minutes), 1):.1f} calls per active "
        f"minute, at most {int(peak['calls'])} in one minute. Concurrency (time in calls per "
        f"second): {minutes['busy_s'].sum() / (60 * len(minutes)):.2f} on average over active "
        f"minutes, {busiest['busy_s'] / 60:.2f} in the busiest.")


def _top(usage: Any, group: str) -> str:
    if usage.empty:
        return ""
    rows = "".join(f"<tr><td>{esc(str(r[group]))}</td><td>{int(r['calls'])}</td>"
                   f"<td>{int(r['tokens_in'])}</td><td>{int(r['tokens_out'])}</td>"
                   f"<td>${r['cost']:,.4f}</td><td>{int(r['unpriced_calls'])}</td></tr>"
                   for _, r in usage.iterrows())
    return (f"<h4>Top by {esc(group)}</h4><table class='wb-ctable'><tr><th>{esc(group)}</th>"
            "<th>calls</th><th>tokens in</th><th>tokens out</th><th>cost</th>"
            f"<th>unpriced</th></tr>{rows}</table>")


def _latency(frame: Any) -> str:
    if frame.empty:
        return ""
    rows = "".join(f"<tr><td>{esc(str(r['step']))}</td><td>{int(r['calls'])}</td>"
                   + "".join(f"<td>{r[q]:.3f}</td>" for q in ("p50", "p95", "p99"))
                   + "</tr>" for _, r in frame.iterrows())
    return ("<h4>Latency per step (seconds)</h4><table class='wb-ctable'><tr><th>step</th>"
            f"<th>calls</th><th>p50</th><th>p95</th><th>p99</th></tr>{rows}</table>")
