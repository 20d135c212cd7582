"""One error tree: every failure a user can fix says where it is and what to do."""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base of every error the workbench raises on purpose."""


class WorkbenchWarning(UserWarning):
    """A problem with the user's data or run that does not stop it. Its own class, so the
    command line, which prints each of these as a line of its own, can leave Python's
    duplicate out."""


class SpecError(WorkbenchError):
    """An experiment file (or a file it names) is invalid.

    Carries the file, the field and the fix so that the message points at the line to edit.
    """

    def __init__(self, file: str, field: str, problem: str, fix: str = "") -> None:
        self.file, self.field, self.problem, self.fix = str(file), field, problem, fix
        where = f"{self.file}: {field}" if field else self.file
        message = f"{where}: {problem}"
        if fix:
            message += f"\n  fix: {fix}"
        super().__init__(message)


class TemplateError(WorkbenchError):
    """A prompt template is malformed or its variables do not match the data."""


class EvalSetError(WorkbenchError):
    """An eval set cannot be loaded or has unusable rows."""


class GatewayError(WorkbenchError):
    """A model call failed; the message says whether retrying can help.

    ``model`` is the model string of the call, ``status`` the provider's HTTP status (None
    when no response came, or none applies), ``retries`` how many retries were made first.
    The subclasses below are what a litellm exception becomes (``gateway.client.mapped``).
    """

    def __init__(self, message: str = "", *, model: str | None = None,
                 status: int | None = None, retries: int = 0) -> None:
        super().__init__(message)
        self.model, self.status, self.retries = model, status, retries

    def __reduce__(self) -> tuple[object, ...]:  # keyword attributes survive pickling
        return (_rebuild, (type(self), str(self), self.model, self.status, self.retries))


def _rebuild(cls: type[GatewayError], message: str, model: str | None, status: int | None,
             retries: int) -> GatewayError:
    return cls(message, model=model, status=status, retries=retries)


class RateLimited(GatewayError):
    """The provider refused the call for its rate limit (429)."""


class Unauthorized(GatewayError):
    """The key is missing, wrong, or not allowed this model (401, 403)."""


class ContextWindowExceeded(GatewayError):
    """The prompt does not fit the model's context window (found before or by the call)."""


class Timeout(GatewayError):
    """No answer within the configured timeout."""


class ConnectionFailed(GatewayError):
    """The provider could not be reached, or dropped the connection."""


class ProviderError(GatewayError):
    """Any other failure the provider reported: a 5xx, a rejected request, an unknown model."""


class RegistryError(WorkbenchError):
    """A prompt registry operation failed (unknown prompt, alias, or version)."""


class ScorerError(WorkbenchError):
    """A scorer is unknown or configured wrongly."""


class ScorerInputError(ScorerError, ValueError):
    """An example lacks what a scorer needs, or holds a value it cannot score."""


class StatsInputError(WorkbenchError, ValueError):
    """The results or the options given to the statistics cannot be used as they are."""
