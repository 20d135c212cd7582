"""Alerts are delivered once each - to the log, a notebook DataFrame and a webhook - and a
webhook that fails says so and gets the same alerts again on the next check."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from workbench import observe
from workbench.observe.alerting import AlertDeliveryError, deliver
from workbench.observe.anomalies import Alert
from workbench.observe.record import UsageRecord
from workbench.observe.store import Store


class Receiver:
    """A loopback webhook: records each JSON body; answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status, self.bodies = status, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers["content-length"])
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    started = Receiver()
    yield started
    started.close()


@pytest.fixture
def store(tmp_path):
    opened = Store(f"sqlite:///{tmp_path / 'usage.sqlite'}")
    yield opened
    opened.dispose()


ALERT = Alert(kind="cost", key="user=u-27", start=1_768_870_800.0, end=1_768_892_400.0,
              expected=0.07, observed=1.19, unit="USD/h")


def test_a_new_alert_is_logged_once(store, caplog):
    with caplog.at_level(logging.WARNING, logger="workbench.observe.alerting"):
        assert deliver([ALERT], store).new == 1
        assert deliver([ALERT], store).already_delivered == 1
    logged = [r.getMessage() for r in caplog.records]
    assert logged == ["alert: cost at user=u-27, 2026-01-20 01:00 UTC to 2026-01-20 07:00 UTC: "
                      "expected 0.07 USD/h, observed 1.19"]


def test_the_webhook_gets_the_alerts_as_json(store, receiver):
    deliver([ALERT], store, webhook=receiver.url)
    deliver([ALERT], store, webhook=receiver.url)  # already delivered: not sent again
    assert len(receiver.bodies) == 1
    sent = receiver.bodies[0]["alerts"][0]
    assert sent["kind"] == "cost" and sent["key"] == "user=u-27"
    assert (sent["expected"], sent["observed"]) == (0.07, 1.19)
    assert sent["start"] == "2026-01-20 01:00 UTC" and sent["alert_id"] == ALERT.alert_id


def test_a_failing_webhook_is_an_error_and_the_alerts_are_sent_again(store, receiver):
    receiver.status = 500
    with pytest.raises(AlertDeliveryError, match=f"webhook {receiver.url}: it answered HTTP "
                                                 "500.*1 alert\\(s\\) were not delivered"):
        deliver([ALERT], store, webhook=receiver.url)
    receiver.status = 204
    assert deliver([ALERT], store, webhook=receiver.url).new == 1
    assert len(receiver.bodies) == 2


def test_an_unreachable_webhook_names_the_url_and_the_fix(store):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"  # nothing listens
    with pytest.raises(AlertDeliveryError, match="could not be reached.*fix: check the URL"):
        deliver([ALERT], store, webhook=url, timeout_s=2)


def test_observe_alerts_finds_unpriced_calls_in_the_project_ledger(tmp_path, monkeypatch,
                                                                   receiver):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    monkeypatch.delenv("WORKBENCH_LEDGER_URL", raising=False)
    for _ in range(3):
        observe.record(UsageRecord(application="lab", model="acme/new-1", tokens_in=500,
                                   tokens_out=20, priced=False, ts=time.time() - 60))
    table = observe.alerts(since="2h", webhook=receiver.url)
    assert list(table["kind"]) == ["unpriced"] and table["new"].all()
    assert table.loc[0, "key"] == "model=acme/new-1" and table.loc[0, "observed"] == 3
    again = observe.alerts(since="2h", webhook=receiver.url)
    assert not again["new"].any()
    assert len(receiver.bodies) == 1
