"""litellm's exceptions read once: which failures are worth a retry, and the workbench error
each one becomes (scrubbed of keys). Every path that calls litellm maps its failures here."""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import (
    ConnectionFailed,
    ContextWindowExceeded,
    GatewayError,
    ProviderError,
    RateLimited,
    Timeout,
    Unauthorized,
)
from .config import ModelConfig
from .scrub import scrub


def _retryable(exc: Exception) -> bool:
    """litellm's own rule: 408, 409, 429 and 5xx (timeouts and lost connections included)."""
    import litellm

    if isinstance(exc, (litellm.Timeout, litellm.APIConnectionError)):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and litellm.utils.should_retry(status)


def _headers(exc: Exception) -> Any:
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    return headers


def mapped(exc: Exception, config: ModelConfig, retries: int | None = None) -> GatewayError:
    """The workbench error for a failed litellm call: the one place litellm's exceptions
    are read. The message is scrubbed of keys; raise the result ``from exc``.

    ``retries`` is what the caller counted; else litellm's own count on the exception
    (the Router sets it), else 0.
    """
    import litellm

    if isinstance(exc, GatewayError):
        return exc
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    kind: type[GatewayError]
    underneath = ""
    if isinstance(exc, litellm.ContextWindowExceededError):
        kind = ContextWindowExceeded
    elif isinstance(exc, litellm.RateLimitError):
        kind = RateLimited
    elif isinstance(exc, (litellm.AuthenticationError, litellm.PermissionDeniedError)):
        kind = Unauthorized
    elif isinstance(exc, litellm.Timeout):
        kind, status = Timeout, None  # litellm's 408 is its own; no response came
    elif isinstance(exc, litellm.APIConnectionError):
        kind, status = ConnectionFailed, None
    else:
        kind = _transport_failure(exc) or ProviderError
        if kind is not ProviderError:  # litellm reports a refused connection as a 500 of its own
            status = None
            underneath = "timed out" if kind is Timeout else "connection failed"
    message = _describe(exc, config, status, underneath)
    if retries is None:  # the Router's count; its message says so already
        retries = int(getattr(exc, "num_retries", None) or 0)
    elif retries:
        message += f" (after {retries} retries)"
    return kind(message, model=config.model, status=status, retries=retries)


def _transport_failure(exc: BaseException) -> type[GatewayError] | None:
    """Timeout or ConnectionFailed when the cause underneath is one (no response came)."""
    import httpx

    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, (httpx.TimeoutException, asyncio.TimeoutError)):
            return Timeout
        if isinstance(cause, (httpx.TransportError, ConnectionError)):
            return ConnectionFailed
        if type(cause).__name__ == "APITimeoutError":  # the OpenAI SDK's, before httpx's
            return Timeout
        if type(cause).__name__ == "APIConnectionError" and cause is not exc:
            return ConnectionFailed
        cause = cause.__cause__ or cause.__context__  # litellm re-raises in except
    return None


def _describe(exc: Exception, config: ModelConfig, status: int | None = None,
              underneath: str = "") -> str:
    """One line: the model, litellm's exception, the HTTP status a server answered (none
    when no response came, whatever litellm says), the message."""
    kind = type(exc).__name__
    text = scrub(str(exc), [config])  # before the cut: a key cut in half would not match
    message = text.strip().splitlines()[0] if text.strip() else kind
    said = f" ({status})" if status else f" (no response: {underneath})" if underneath else ""
    prefix = f"{config.model}: {kind}{said}"
    hint = {401: " — check the key in the environment variable named by api_key_env",
            404: " — check the model name"}.get(status or 0, "")
    return f"{prefix}: {message[:300]}{hint}"
