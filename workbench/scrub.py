"""Keys out of error text before it is stored, logged or returned.

Some providers echo the key they were sent in an error message ("Incorrect API key
provided: sk-..."), and error text travels far: results tables, MLflow traces, logs and
HTTP bodies. So every error text that leaves a model call passes through :func:`scrub`,
which removes the configured key values (the variables named by ``api_key_env``, and
key-like variables litellm reads by itself) and anything shaped like a key.
"""

from __future__ import annotations

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


def configured_secrets(configs: Iterable[Any] = ()) -> set[str]:
    """Key values in the environment: each config's ``api_key_env`` (fallbacks included)
    and every variable whose name says it holds a key."""
    names = {name for name in os.environ if _SECRET_NAME.search(name)}
    pending = list(configs)
    while pending:
        config = pending.pop()
        if getattr(config, "api_key_env", None):
            names.add(config.api_key_env)
        pending.extend(getattr(config, "fallbacks", None) or [])
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
