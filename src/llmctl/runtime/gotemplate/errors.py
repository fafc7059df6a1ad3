"""The one error type every stage (lexing, parsing, executing) raises, so callers catch a single class."""

from __future__ import annotations

from llmctl.errors import InvalidInput


class TemplateError(InvalidInput):
    """A template that does not parse or fails while executing."""
