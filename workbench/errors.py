"""One error tree: every failure a user can fix says where it is and what to do."""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base of every error the workbench raises on purpose."""


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
    """A model call failed; the message says whether retrying can help."""


class RegistryError(WorkbenchError):
    """A prompt registry operation failed (unknown prompt, alias, or version)."""


class ScorerError(WorkbenchError):
    """A scorer is unknown or configured wrongly."""
