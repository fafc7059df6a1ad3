"""A Go `text/template` interpreter for Ollama TEMPLATE layers.

Covers what Ollama's templates use: text, `{{ pipeline }}` output, `-` trim markers, comments, `if` / `else if`
/ `else with` / `else` / `end`, `range` (with `$i, $e :=`, over lists, maps (sorted keys) and integers,
`break`, `continue`), `with`, variables (`$x := ...`, `$x = ...`, `$`), field chains on maps and objects,
parenthesised pipelines, `|` pipes, and the builtin functions `and or not len index slice eq ne lt le gt ge
print printf println html js urlquery` plus Ollama's `json` and `currentDate`.

Differences from Go, on purpose: a missing key prints as "" (Go prints "<no value>"); a field looks up the
exact key, then the key with a lower-case first letter, then its snake_case form, so `.Function.Name` works
on OpenAI-shaped tool dicts. `define`, `template` and `block` are not supported (no Ollama template uses them).

Modules, in pipeline order: `lexer` (source to text/action items, trim markers), `parser` (items to the
`nodes` tree), `evaluate` (running the tree, with `functions` and `values`), `template` (the `Template` API);
`errors` holds `TemplateError`, raised by all of them; `limits` the bounds of one render (`Limits`: output size,
`range` steps, printf width, nesting), whose breach is a `TemplateLimitError`.
"""

from __future__ import annotations

from llmctl.runtime.gotemplate.limits import Limits, TemplateLimitError
from llmctl.runtime.gotemplate.template import Template, parse

__all__ = ["Limits", "Template", "TemplateLimitError", "parse"]
