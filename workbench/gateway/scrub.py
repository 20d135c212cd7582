"""Keys out of error text before it is stored, logged or returned.

Some providers echo the key they were sent in an error message ("Incorrect API key
provided: sk-..."), and error text travels far: results tables, MLflow traces, logs and
HTTP bodies. So every error text that leaves a model call passes through :func:`scrub`,
which removes the configured key values (the variables named by ``api_key_env``, and
key-like variables litellm reads by itself) and anything shaped like a key. litellm logs
such messages itself too (its Router at ERROR level), so :func:`guard_logs` scrubs the
records of its loggers.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from typing import Any

REDACTED = "[redacted]"

# Shorter values would blank out ordinary words; real keys are far longer.
_MIN_SECRET = 8

# Variables litellm reads without being told (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...).
_SECRET_NAME = re.compile(r"(?i)(api_?key|_key$|token|secret|password|credential)")

# (pattern, replacement): provider key formats, bearer tokens, keys in URLs and fields.
_SHAPES = [
    (re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_\-]{8,}"), REDACTED),
    (re.compile(r"\b(?:gsk|hf|xai|r8|ghp|gho|github_pat|glpat)[_-][A-Za-z0-9_\-]{16,}"),
     REDACTED),
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{20,}"), REDACTED),
    (re.compile(r"\bA(?:KI|SI)A[0-9A-Z]{16}\b"), REDACTED),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=\-]{8,}"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)([?&](?:api[_-]?key|key|token|access_token|sig)=)[^&\s\"'#]+"),
     rf"\1{REDACTED}"),
    (re.compile(r"(?i)([\"']?(?:api[_-]?key|x-api-key|authorization|password|secret)"
                r"[\"']?\s*[:=]\s*[\"']?)[^\"'\s,;}]{8,}"), rf"\1{REDACTED}"),
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+@"), rf"\1{REDACTED}@"),  # user:password@host
]


# api_key_env names of the configs that have called a model in this process
_key_envs: set[str] = set()


def _env_names(configs: Iterable[Any]) -> set[str]:
    names, pending = set(), list(configs)
    while pending:
        config = pending.pop()
        if getattr(config, "api_key_env", None):
            names.add(config.api_key_env)
        pending.extend(getattr(config, "fallbacks", None) or [])
    return names


def configured_secrets(configs: Iterable[Any] = ()) -> set[str]:
    """Key values in the environment: each config's ``api_key_env`` (fallbacks included),
    those of the configs that called a model here, and every variable whose name says it
    holds a key."""
    names = {name for name in os.environ if _SECRET_NAME.search(name)}
    names |= _key_envs | _env_names(configs)
    values = (os.environ.get(name, "") for name in names)
    return {value for value in values if len(value) >= _MIN_SECRET}


def scrub(text: str, configs: Iterable[Any] = ()) -> str:
    """``text`` without configured key values or key-shaped strings.

    Scrub before truncating: a key cut in half no longer matches its configured value.
    """
    # longest first, so a key that contains another is removed whole
    for secret in sorted(configured_secrets(configs), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text


# litellm's own loggers, and the SDK underneath, which log provider error messages
_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "openai")
_guarded = False


class _ScrubRecords(logging.Filter):
    """Scrubs a record's message and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:  # formatters reuse exc_text
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        return True


def guard_logs(config: Any = None) -> None:
    """Scrub what litellm and the OpenAI SDK log, knowing ``config``'s keys as well."""
    global _guarded
    if config is not None:
        _key_envs.update(_env_names([config]))
    if _guarded:
        return
    _guarded = True
    for name in _LOGGERS:
        logging.getLogger(name).addFilter(_ScrubRecords())
