"""An OpenAI-compatible chat-completions server on 127.0.0.1 for tests and benchmarks.

The suite talks to it through litellm's real HTTP client, so retries, timeouts, error
mapping and streaming are exercised as they would be against a hosted provider, with no
API key and no network. Answers and faults are deterministic so failures reproduce.

In a test::

    with FakeLLMServer(responder=scripted({"invoice": "billing"})) as server:
        litellm.completion(model="openai/test-model", api_base=server.base_url,
                           api_key="sk-test", messages=[...])
        assert server.request_count == 1

As a script (benchmarks, manual use)::

    python tests/llm_server.py --port 0 --latency 0.1   # first stdout line is the base URL
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

HOST = "127.0.0.1"
MODELS = ("test-model", "test-model-2")

Responder = Callable[[dict[str, Any]], str]

_PIECE = re.compile(r"\S+\s*|\s+")


@dataclass
class Faults:
    """Failure modes to inject, so client-side resilience can be tested on purpose.

    The probabilities are bands of one uniform draw per request (in the order listed),
    so they are mutually exclusive and must add up to at most 1. The draw depends only on
    the server's seed and the request's ordinal, so a run replays exactly.
    """

    rate_limit: float = 0.0
    server_error: float = 0.0
    timeout: float = 0.0
    bad_json: float = 0.0
    reset: float = 0.0
    down_models: set[str] = field(default_factory=set)
    fail_first: int = 0
    retry_after: str = "1"
    hang_seconds: float = 30.0
    auth_key: str | None = None
    # a 401 that quotes the key it was sent, as some providers' error messages do
    echo_key: bool = False
    # a request whose last user message contains a key gets that fault, every time:
    # "rate_limit" (429), "unauthorized" (401), "server_error" (500), "context_window" (400)
    by_content: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.down_models = set(self.down_models)
        rates = self._rates()
        for name, rate in rates:
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"Faults.{name} must be a probability in [0, 1], got {rate}")
        total = sum(rate for _, rate in rates)
        if total > 1.0 + 1e-9:
            raise ValueError(f"Faults probabilities add up to {total:g}; they must total <= 1")
        if self.fail_first < 0:
            raise ValueError("Faults.fail_first must be >= 0")

    def _rates(self) -> list[tuple[str, float]]:
        return [
            ("rate_limit", self.rate_limit),
            ("server_error", self.server_error),
            ("timeout", self.timeout),
            ("bad_json", self.bad_json),
            ("reset", self.reset),
        ]

    def pick(self, seed: int, ordinal: int) -> str | None:
        """Name the random fault for request number `ordinal`, or None."""
        rates = self._rates()
        if not any(rate for _, rate in rates):
            return None
        draw = random.Random(f"{seed}:{ordinal}").random()
        edge = 0.0
        for name, rate in rates:
            edge += rate
            if draw < edge:
                return name
        return None


def message_text(message: Mapping[str, Any]) -> str:
    """Text of a chat message whether its content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "")
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return ""


def last_user_message(body: Mapping[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return message_text(message)
    return ""


def echo(body: dict[str, Any]) -> str:
    """Default answer: a pure function of the request, so assertions need no scripting."""
    return "echo: " + last_user_message(body)


def scripted(mapping: Mapping[str, str], default: str = "I don't know.") -> Responder:
    """Answer with the first value whose key occurs in the last user message.

    Insertion order decides between overlapping keys, as a reader of the mapping expects.
    """
    items = list(mapping.items())

    def respond(body: dict[str, Any]) -> str:
        text = last_user_message(body)
        for key, answer in items:
            if key in text:
                return answer
        return default

    return respond


def count_tokens(text: str) -> int:
    """Whitespace words, at least 1: close enough to a tokenizer for cost arithmetic."""
    return max(1, len(text.split()))


def error_response(
    status: int,
    message: str,
    err_type: str,
    code: str | None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """OpenAI's error envelope, which the SDK parses into the exception message."""
    payload = {"error": {"message": message, "type": err_type, "param": None, "code": code}}
    return web.json_response(payload, status=status, headers=headers)


@web.middleware
async def _openai_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    # aiohttp's own 404/405 pages are plain text; clients expect the OpenAI envelope.
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason, "invalid_request_error", None)


class FakeLLMServer:
    """Chat-completions server running its own asyncio loop in a daemon thread.

    A thread (rather than the test's loop) lets plain synchronous tests and fixtures use
    it, and keeps server work off whatever loop the code under test runs. `latency`,
    `model_latency`, `responder` and `faults` may be reassigned while it runs.
    """

    def __init__(
        self,
        latency: float = 0.0,
        responder: Responder | None = None,
        faults: Faults | None = None,
        seed: int = 0,
        *,
        port: int = 0,
        model_latency: Mapping[str, float] | None = None,
    ) -> None:
        self.latency = latency
        self.chunk_latency = 0.0  # seconds between streamed chunks (0: one write)
        # prompt tokens reported as read from a prompt cache (usage.prompt_tokens_details)
        self.cached_prompt_tokens = 0
        self.model_latency: dict[str, float] = dict(model_latency or {})
        # embeddings: vector length, and a salt that stands for a silently changed model
        self.embedding_dimensions = 64
        self.embedding_salt = ""
        self.responder: Responder = responder or echo
        self.seed = seed
        self._faults = faults or Faults()
        self._requested_port = port
        self._port: int | None = None
        self._lock = threading.Lock()
        self._count = 0
        self._fail_first_used = 0
        self._requests: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._startup_error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> FakeLLMServer:
        if self._thread is not None:
            raise RuntimeError("server already started")
        ready = threading.Event()
        self._startup_error = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="fake-llm-server", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout=10):
            raise RuntimeError("fake LLM server did not start within 10 s")
        if self._startup_error is not None:
            self._thread.join()
            self._thread = None
            raise self._startup_error
        return self

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = None
        self._loop = None
        self._port = None

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._bind())
        except BaseException as exc:  # handed to start() in the caller's thread
            self._startup_error = exc
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            runner = self._runner
            if runner is not None:
                loop.run_until_complete(runner.cleanup())
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._runner = None

    async def _bind(self) -> None:
        app = web.Application(middlewares=[_openai_errors])
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/models", self._models)
        app.router.add_get("/health", self._health)
        # No access log and cancelled handlers on disconnect: hung or aborted requests
        # must not pile up under load, and stop() must not wait on them for long.
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.25
        )
        await runner.setup()
        site = web.TCPSite(runner, HOST, self._requested_port, backlog=1024)
        await site.start()
        self._runner = runner
        self._port = runner.addresses[0][1]

    # -- addresses ---------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("server is not running; call start() or use it in a with block")
        return self._port

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    # -- faults ------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        # A new Faults starts its own fail_first budget.
        with self._lock:
            self._faults = faults
            self._fail_first_used = 0

    # -- what was received -------------------------------------------------------

    @property
    def request_count(self) -> int:
        with self._lock:
            return self._count

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> dict[str, Any] | None:
        with self._lock:
            return self._requests[-1] if self._requests else None

    def count_for(self, model: str) -> int:
        with self._lock:
            return sum(1 for body in self._requests if body.get("model") == model)

    def reset(self) -> None:
        """Forget received requests and restart fault replay from request 1."""
        with self._lock:
            self._count = 0
            self._fail_first_used = 0
            self._requests.clear()

    # -- handlers ----------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _models(self, request: web.Request) -> web.Response:
        created = 1_700_000_000
        data = [
            {"id": name, "object": "model", "created": created, "owned_by": "workbench-tests"}
            for name in MODELS
        ]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        body: dict[str, Any] | None = parsed if isinstance(parsed, dict) else None
        faults = self._faults
        with self._lock:
            self._count += 1
            ordinal = self._count
            self._requests.append(body if body is not None else {})

        model = body.get("model") if body else None
        delay = self.model_latency.get(model, self.latency) if isinstance(model, str) else 0.0
        if delay > 0:
            await asyncio.sleep(delay)

        if faults.auth_key is not None:
            expected = f"Bearer {faults.auth_key}"
            given = request.headers.get("Authorization", "")
            if given != expected:
                sent = given.removeprefix("Bearer ")
                quoted = f": {sent}. You can find your API key in your account" if (
                    faults.echo_key) else ""
                return error_response(
                    401, f"Incorrect API key provided{quoted}.", "invalid_request_error",
                    "invalid_api_key"
                )
        if body is None:
            return error_response(
                400, "Request body is not a JSON object.", "invalid_request_error", None
            )
        messages = body.get("messages")
        if not isinstance(model, str) or not model:
            return error_response(
                400, "you must provide a model parameter", "invalid_request_error", None
            )
        if not isinstance(messages, list) or not messages:
            return error_response(
                400, "'messages' must be a non-empty array", "invalid_request_error", None
            )
        for marker, kind in faults.by_content.items():
            if marker in last_user_message(body):
                return self._fault_response(kind, model)
        if model in faults.down_models:
            return error_response(
                503,
                f"The model `{model}` is currently unavailable.",
                "server_error",
                "model_unavailable",
            )
        with self._lock:
            failing = self._fail_first_used < faults.fail_first
            if failing:
                self._fail_first_used += 1
        if failing:
            return self._server_error()

        fault = faults.pick(self.seed, ordinal)
        if fault == "rate_limit":
            return error_response(
                429,
                f"Rate limit reached for {model}. Please try again in {faults.retry_after}s.",
                "requests",
                "rate_limit_exceeded",
                headers={"Retry-After": faults.retry_after},
            )
        if fault == "server_error":
            return self._server_error()
        if fault == "reset":
            return await self._drop_connection(request)
        if fault == "bad_json":
            return await self._bad_json(request, body)
        if fault == "timeout":
            await asyncio.sleep(faults.hang_seconds)

        try:
            content = self.responder(body)
        except Exception as exc:  # surfaced to the client so the failing test shows why
            return error_response(
                500, f"responder raised {exc!r}", "server_error", "responder_error"
            )
        return await self._answer(request, body, str(content))

    async def _embeddings(self, request: web.Request) -> web.Response:
        """``/v1/embeddings``: hashed bag-of-words vectors, so texts sharing words are near."""
        try:
            parsed = json.loads(await request.read())
        except ValueError:
            parsed = None
        body: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
        faults = self._faults
        with self._lock:
            self._count += 1
            self._requests.append(body)
            failing = self._fail_first_used < faults.fail_first
            if failing:
                self._fail_first_used += 1
        if faults.auth_key is not None:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if given != faults.auth_key:
                quoted = f": {given}. You can find your API key in your account" if (
                    faults.echo_key) else ""
                return error_response(401, f"Incorrect API key provided{quoted}.",
                                      "invalid_request_error", "invalid_api_key")
        if failing:
            return self._server_error()
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return error_response(400, "'input' must be a string or a non-empty array of "
                                  "strings", "invalid_request_error", None)
        data = [{"object": "embedding", "index": i, "embedding": self.embedding(text)}
                for i, text in enumerate(texts)]
        tokens = sum(count_tokens(t) for t in texts)
        return web.json_response({"object": "list", "data": data, "model": body.get("model"),
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def embedding(self, text: str) -> list[float]:
        """The vector this server gives ``text``: a pure function of it and the salt."""
        vector = [0.0] * self.embedding_dimensions
        for word in re.findall(r"\w+", text.lower()):
            digest = hashlib.blake2b(f"{self.embedding_salt}:{word}".encode(), digest_size=8)
            value = int.from_bytes(digest.digest(), "big")
            vector[value % self.embedding_dimensions] += 1.0 if value >> 63 else -1.0
        return vector

    @classmethod
    def _fault_response(cls, kind: str, model: str) -> web.Response:
        if kind == "rate_limit":
            return error_response(429, f"Rate limit reached for {model}.", "requests",
                                  "rate_limit_exceeded", headers={"Retry-After": "0"})
        if kind == "unauthorized":
            return error_response(401, "Incorrect API key provided.", "invalid_request_error",
                                  "invalid_api_key")
        if kind == "server_error":
            return cls._server_error()
        if kind == "context_window":
            return error_response(
                400, "This model's maximum context length is 16 tokens. However, your "
                "messages resulted in 4096 tokens.", "invalid_request_error",
                "context_length_exceeded")
        raise ValueError(f"unknown fault {kind!r}")

    @staticmethod
    def _server_error() -> web.Response:
        return error_response(
            500,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            "internal_error",
        )

    async def _drop_connection(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Linger 0 turns close into a TCP RST, what a crashed upstream looks like.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        # handler_cancellation cancels this task once aiohttp sees the connection gone.
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def _bad_json(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if body.get("stream"):
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(b'data: {"id": "chatcmpl-broken", "choices": [\n\ndata: [DONE]\n\n')
            await resp.write_eof()
            return resp
        return web.Response(
            status=200,
            body=b'{"id": "chatcmpl-broken", "choices": [',
            content_type="application/json",
        )

    async def _answer(
        self, request: web.Request, body: dict[str, Any], content: str
    ) -> web.StreamResponse:
        finish_reason = "stop"
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and limit > 0:
            words = content.split()
            if len(words) > limit:
                content = " ".join(words[:limit])
                finish_reason = "length"
        prompt_tokens = count_tokens(
            " ".join(message_text(m) for m in body["messages"] if isinstance(m, Mapping))
        )
        completion_tokens = count_tokens(content)
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if self.cached_prompt_tokens:
            usage["prompt_tokens_details"] = {
                "cached_tokens": min(self.cached_prompt_tokens, prompt_tokens)}
        head = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_workbench_tests",
        }
        if body.get("stream"):
            options = body.get("stream_options")
            include_usage = isinstance(options, Mapping) and bool(options.get("include_usage"))
            return await self._stream(request, head, content, finish_reason, usage, include_usage,
                                      self.chunk_latency)
        completion = {
            **head,
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": usage,
        }
        return web.json_response(completion)

    @staticmethod
    async def _stream(
        request: web.Request,
        head: dict[str, Any],
        content: str,
        finish_reason: str,
        usage: dict[str, Any],
        include_usage: bool,
        chunk_latency: float = 0.0,
    ) -> web.StreamResponse:
        base = {**head, "object": "chat.completion.chunk"}
        if include_usage:
            base["usage"] = None  # OpenAI marks every chunk but the last this way

        def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

        chunks = [{**base, "choices": [choice({"role": "assistant", "content": ""})]}]
        chunks += [{**base, "choices": [choice({"content": p})]} for p in _PIECE.findall(content)]
        chunks.append({**base, "choices": [choice({}, finish_reason)]})
        if include_usage:
            chunks.append({**base, "choices": [], "usage": usage})
        events = [f"data: {json.dumps(c)}\n\n" for c in chunks] + ["data: [DONE]\n\n"]

        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        if chunk_latency > 0:  # a model that writes slowly
            for event in events:
                await resp.write(event.encode())
                await asyncio.sleep(chunk_latency)
        else:
            await resp.write("".join(events).encode())  # one write: no per-chunk syscalls
        await resp.write_eof()
        return resp


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate-limit", type=float, default=0.0)
    parser.add_argument("--server-error", type=float, default=0.0)
    parser.add_argument("--timeout", type=float, default=0.0)
    parser.add_argument("--bad-json", type=float, default=0.0)
    parser.add_argument("--reset", type=float, default=0.0)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--down-model", action="append", default=[], metavar="MODEL")
    parser.add_argument("--retry-after", default="1")
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument("--auth-key", default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    faults = Faults(
        rate_limit=args.rate_limit,
        server_error=args.server_error,
        timeout=args.timeout,
        bad_json=args.bad_json,
        reset=args.reset,
        down_models=set(args.down_model),
        fail_first=args.fail_first,
        retry_after=args.retry_after,
        hang_seconds=args.hang_seconds,
        auth_key=args.auth_key,
    )
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    with FakeLLMServer(latency=args.latency, faults=faults, seed=args.seed, port=args.port) as srv:
        print(srv.base_url, flush=True)
        while not done.wait(timeout=1.0):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
