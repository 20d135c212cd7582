"""What the loopback LLM server does, and how litellm reacts to each of its faults.

The litellm assertions double as a record of this litellm version's behaviour (exception
classes, retries, Retry-After), which the gateway relies on.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import asyncio
import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import litellm
import pytest

try:
    from .llm_server import FakeLLMServer, Faults, scripted
except ImportError:  # tests/ on sys.path rather than imported as a package
    from llm_server import FakeLLMServer, Faults, scripted  # type: ignore[no-redef]

litellm.suppress_debug_info = True

NO_RETRY: dict[str, Any] = {"num_retries": 0, "max_retries": 0}


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


def ask(
    server: FakeLLMServer, text: str = "hello", model: str = "openai/test-model", **kwargs: Any
) -> Any:
    """One litellm call over real HTTP, on a fresh event loop as a notebook cell would."""
    kwargs.setdefault("api_key", "sk-test")
    return asyncio.run(
        litellm.acompletion(
            model=model,
            api_base=server.base_url,
            messages=[{"role": "user", "content": text}],
            **kwargs,
        )
    )


def raw_post(
    server: FakeLLMServer, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Bypass litellm to see exactly what went over the wire."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=payload,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def chat_body(text: str = "hi", model: str = "test-model") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


# -- answers -------------------------------------------------------------------------


def test_litellm_gets_the_scripted_answer_and_word_count_usage() -> None:
    responder = scripted({"invoice": "billing", "password": "account"}, default="other")
    with FakeLLMServer(responder=responder) as server:
        resp = ask(server, "My invoice is wrong")

    assert resp.choices[0].message.content == "billing"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model.endswith("test-model")
    # Usage is whitespace words: 4 in the prompt, 1 in the answer.
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (4, 1)
    assert resp.usage.total_tokens == 5


def test_default_answer_echoes_the_last_user_message(server: FakeLLMServer) -> None:
    status, _, raw = raw_post(
        server,
        {
            "model": "test-model",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [{"type": "text", "text": "second"}]},
            ],
        },
    )
    body = json.loads(raw)
    assert status == 200
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "echo: second",
        "refusal": None,
    }


def test_scripted_takes_the_first_matching_key_else_the_default() -> None:
    respond = scripted({"refund": "billing", "refund status": "never chosen"}, default="?")

    def body(text: str) -> dict[str, Any]:
        return chat_body(text)

    assert respond(body("refund status please")) == "billing"
    assert respond(body("nothing relevant")) == "?"


def test_a_callable_responder_sees_the_whole_request() -> None:
    with FakeLLMServer(responder=lambda body: f"{body['model']} t={body['temperature']}") as srv:
        resp = ask(srv, temperature=0.25)
    assert resp.choices[0].message.content == "test-model t=0.25"


def test_max_tokens_truncates_and_reports_length(server: FakeLLMServer) -> None:
    server.responder = lambda body: "one two three four five"
    resp = ask(server, max_tokens=2)
    assert resp.choices[0].message.content == "one two"
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage.completion_tokens == 2


def test_streaming_through_litellm_reassembles_the_text_and_usage() -> None:
    async def collect(server: FakeLLMServer) -> tuple[str, Any]:
        stream = await litellm.acompletion(
            model="openai/test-model",
            api_base=server.base_url,
            api_key="sk-test",
            messages=[{"role": "user", "content": "stream  this please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        parts, usage = [], None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
            usage = getattr(chunk, "usage", None) or usage
        return "".join(parts), usage

    with FakeLLMServer(responder=lambda body: "alpha  beta\ngamma ") as server:
        text, usage = asyncio.run(collect(server))
        assert server.last_request is not None and server.last_request["stream"] is True
    assert text == "alpha  beta\ngamma "  # whitespace survives chunking exactly
    assert (usage.prompt_tokens, usage.completion_tokens) == (3, 3)


def test_raw_stream_is_sse_chunks_ending_in_done(server: FakeLLMServer) -> None:
    status, headers, raw = raw_post(server, {**chat_body("a b"), "stream": True})
    events = [line[len("data: ") :] for line in raw.decode().split("\n\n") if line]
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert "usage" not in chunks[-1]  # only sent when stream_options.include_usage asks


# -- what was received ---------------------------------------------------------------


def test_counter_records_every_request_in_order_per_model(server: FakeLLMServer) -> None:
    ask(server, "one")
    ask(server, "two", model="openai/test-model-2")
    server.faults = Faults(server_error=1.0)
    with pytest.raises(litellm.InternalServerError):
        ask(server, "three", **NO_RETRY)

    assert server.request_count == 3  # the faulted request counts too
    assert [r["messages"][0]["content"] for r in server.requests] == ["one", "two", "three"]
    assert server.count_for("test-model") == 2
    assert server.count_for("test-model-2") == 1

    server.reset()
    assert (server.request_count, server.requests, server.count_for("test-model")) == (0, [], 0)


def test_requests_is_a_snapshot_not_a_live_view(server: FakeLLMServer) -> None:
    seen = server.requests
    raw_post(server, chat_body())
    assert seen == [] and len(server.requests) == 1


# -- faults and how litellm surfaces them --------------------------------------------


def test_rate_limit_is_429_with_retry_after_that_litellm_exposes(server: FakeLLMServer) -> None:
    server.faults = Faults(rate_limit=1.0, retry_after="7")

    with pytest.raises(litellm.RateLimitError) as caught:
        ask(server, **NO_RETRY)

    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.litellm_response_headers["retry-after"] == "7"
    assert server.request_count == 1  # no hidden retries

    status, headers, raw = raw_post(server, chat_body())
    assert (status, headers["retry-after"]) == (429, "7")
    assert json.loads(raw)["error"]["code"] == "rate_limit_exceeded"


def test_fail_first_fails_n_requests_then_succeeds(server: FakeLLMServer) -> None:
    server.faults = Faults(fail_first=2)
    for _ in range(2):
        with pytest.raises(litellm.InternalServerError) as caught:
            ask(server, **NO_RETRY)
        assert caught.value.status_code == 500
    assert ask(server, **NO_RETRY).choices[0].message.content == "echo: hello"
    assert server.request_count == 3


def test_litellm_retries_a_500_by_default(server: FakeLLMServer) -> None:
    # The openai SDK underneath retries 408/409/429/5xx and connection errors twice.
    server.faults = Faults(fail_first=1)
    assert ask(server).choices[0].message.content == "echo: hello"
    assert server.request_count == 2


def test_a_down_model_gets_503_while_others_answer(server: FakeLLMServer) -> None:
    server.faults = Faults(down_models={"test-model"})

    with pytest.raises(litellm.ServiceUnavailableError) as caught:
        ask(server, **NO_RETRY)
    assert caught.value.status_code == 503
    assert ask(server, model="openai/test-model-2").choices[0].message.content == "echo: hello"


def test_bad_json_is_a_200_that_litellm_reports_as_a_server_error(server: FakeLLMServer) -> None:
    server.faults = Faults(bad_json=1.0)

    status, headers, raw = raw_post(server, chat_body())
    assert status == 200 and headers["content-type"].startswith("application/json")
    with pytest.raises(ValueError):
        json.loads(raw)

    # Not retried even with litellm's defaults: the SDK only retries on status codes.
    server.reset()
    with pytest.raises(litellm.InternalServerError):
        ask(server)
    assert server.request_count == 1


def test_reset_drops_the_connection_without_a_response(server: FakeLLMServer) -> None:
    server.faults = Faults(reset=1.0)

    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
        raw_post(server, chat_body())
    # litellm maps the SDK's APIConnectionError to a 500, message "Connection error."
    with pytest.raises(litellm.InternalServerError, match="Connection error"):
        ask(server, **NO_RETRY)
    assert server.request_count == 2

    server.faults = Faults()
    assert ask(server).choices[0].message.content == "echo: hello"


def test_timeout_hangs_until_the_client_gives_up(server: FakeLLMServer) -> None:
    server.faults = Faults(timeout=1.0, hang_seconds=30)

    started = time.monotonic()
    with pytest.raises(litellm.Timeout):
        ask(server, timeout=0.3, **NO_RETRY)
    assert time.monotonic() - started < 5
    assert server.request_count == 1


def test_hung_answer_arrives_after_hang_seconds(server: FakeLLMServer) -> None:
    server.faults = Faults(timeout=1.0, hang_seconds=0.3)
    started = time.monotonic()
    assert ask(server, **NO_RETRY).choices[0].message.content == "echo: hello"
    assert time.monotonic() - started >= 0.3


def test_auth_key_rejects_missing_or_wrong_bearer_tokens(server: FakeLLMServer) -> None:
    server.faults = Faults(auth_key="sk-right")

    with pytest.raises(litellm.AuthenticationError) as caught:
        ask(server, api_key="sk-wrong", **NO_RETRY)
    assert caught.value.status_code == 401
    assert raw_post(server, chat_body())[0] == 401
    assert ask(server, api_key="sk-right").choices[0].message.content == "echo: hello"


def test_random_faults_replay_exactly_for_a_seed() -> None:
    def statuses(seed: int) -> list[int]:
        faults = Faults(rate_limit=0.3, server_error=0.2)
        with FakeLLMServer(faults=faults, seed=seed) as srv:
            return [raw_post(srv, chat_body())[0] for _ in range(40)]

    first = statuses(seed=1)
    assert first == statuses(seed=1)
    assert first != statuses(seed=2)
    assert {429, 500, 200} == set(first)


def test_fault_probabilities_must_be_a_distribution() -> None:
    with pytest.raises(ValueError, match="add up"):
        Faults(rate_limit=0.6, server_error=0.6)
    with pytest.raises(ValueError, match="probability"):
        Faults(reset=-0.1)


def test_errors_use_the_openai_envelope(server: FakeLLMServer) -> None:
    status, _, raw = raw_post(server, b"not json")
    assert status == 400
    assert set(json.loads(raw)["error"]) >= {"message", "type", "code"}

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/v1/nowhere")
    resp = conn.getresponse()
    assert resp.status == 404
    assert json.loads(resp.read())["error"]["type"] == "invalid_request_error"
    conn.close()


def test_health_and_model_list(server: FakeLLMServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/health")
    assert json.loads(conn.getresponse().read()) == {"status": "ok"}
    conn.request("GET", "/v1/models")
    ids = [m["id"] for m in json.loads(conn.getresponse().read())["data"]]
    conn.close()
    assert "test-model" in ids and len(ids) >= 2


# -- latency and load ----------------------------------------------------------------


def test_latency_applies_per_model() -> None:
    with FakeLLMServer(latency=0.0, model_latency={"slow-model": 0.4}) as srv:
        started = time.monotonic()
        raw_post(srv, chat_body(model="slow-model"))
        slow = time.monotonic() - started
        started = time.monotonic()
        raw_post(srv, chat_body(model="test-model"))
        fast = time.monotonic() - started
    assert slow >= 0.4
    assert fast < slow


def test_hundreds_of_requests_in_flight_wait_concurrently() -> None:
    async def burst(url: str, n: int) -> list[int]:
        limit = aiohttp.TCPConnector(limit=n)
        async with aiohttp.ClientSession(connector=limit) as session:

            async def one(i: int) -> int:
                async with session.post(url, json=chat_body(f"q{i}")) as resp:
                    await resp.read()
                    return resp.status

            return await asyncio.gather(*(one(i) for i in range(n)))

    with FakeLLMServer(latency=0.3) as srv:
        started = time.monotonic()
        codes = asyncio.run(burst(f"{srv.base_url}/chat/completions", 200))
        elapsed = time.monotonic() - started
        assert srv.request_count == 200
    assert codes == [200] * 200
    assert elapsed < 10  # one after another would take 60 s


def test_faults_and_latency_change_on_a_running_server(server: FakeLLMServer) -> None:
    assert raw_post(server, chat_body())[0] == 200
    server.faults = Faults(down_models={"test-model"})
    assert raw_post(server, chat_body())[0] == 503
    server.faults = Faults()
    server.latency = 0.2
    started = time.monotonic()
    assert raw_post(server, chat_body())[0] == 200
    assert time.monotonic() - started >= 0.2


def test_stop_is_prompt_even_with_a_request_hanging() -> None:
    srv = FakeLLMServer(faults=Faults(timeout=1.0, hang_seconds=30)).start()
    with pytest.raises(TimeoutError):
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=0.2)
        conn.request("POST", "/v1/chat/completions", body=json.dumps(chat_body()))
        conn.getresponse()
    started = time.monotonic()
    srv.stop()
    assert time.monotonic() - started < 3


# -- as a script -----------------------------------------------------------------------


def test_script_prints_its_base_url_first_then_serves() -> None:
    script = Path(__file__).with_name("llm_server.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--latency", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        port = int(base_url.rsplit(":", 1)[1].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/health")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
