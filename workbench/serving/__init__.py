"""Serving: :class:`PromptService`, the HTTP app and the live prompt behind it."""

from .service import PromptService

__all__ = ["PromptService"]
