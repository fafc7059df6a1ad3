"""Bounds on one render, so a hostile TEMPLATE (from `/api/create` or a pulled model) costs little.

Go's text/template has none: `{{ printf "%0999999999d" 1 }}` or `{{ range 100000000 }}` take a gigabyte or
minutes, and in the gateway that would be the whole server's memory and time. Each bound is a setting
(`ServeLimits.template_*`, LLMCTL_TEMPLATE_*); breaking one raises `TemplateLimitError`, an `InvalidInput`, so
the client gets a 400 that says which bound, never a frozen or killed gateway.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmctl.runtime.gotemplate.errors import TemplateError


@dataclass(frozen=True)
class Limits:
    max_output: int = 16 * 1024 * 1024  # characters of output, and of any one value a function makes
    max_iterations: int = 100_000  # `range` steps in one render, all loops together
    max_width: int = 4096  # printf width and precision
    max_depth: int = 100  # nested blocks and parentheses, checked when parsing


DEFAULT = Limits()


class TemplateLimitError(TemplateError):
    """A template that breaks one of its `Limits` while parsing or rendering."""


def too_long(size: int, limits: Limits) -> TemplateLimitError:
    return TemplateLimitError(f"template output is larger than {limits.max_output} characters "
                              "(LLMCTL_TEMPLATE_MAX_OUTPUT)")


def too_many_iterations(limits: Limits) -> TemplateLimitError:
    return TemplateLimitError(f"template loops more than {limits.max_iterations} times "
                              "(LLMCTL_TEMPLATE_MAX_ITERATIONS)")


def too_wide(width: int, max_width: int) -> TemplateLimitError:
    return TemplateLimitError(f"printf width or precision {width} is larger than {max_width} "
                              "(LLMCTL_TEMPLATE_MAX_WIDTH)")


def too_deep(max_depth: int) -> TemplateLimitError:
    return TemplateLimitError(f"template nests more than {max_depth} levels deep (LLMCTL_TEMPLATE_MAX_DEPTH)")
