"""Ollama-compatible Modelfiles: parse, inspect, write back.

`parse()` reads a Modelfile exactly as Ollama's parser does (same commands for the same bytes) and checks
parameters as `ollama create` would; `format_modelfile()` writes a parsed one back as Ollama's
`Modelfile.String()` does; `render_modelfile()` builds one from parts (for `show --modelfile`).
Reference: docs/modelfile.md. Pure functions: no file or network access here.
"""

from llmctl.modelfile.formatter import format_command, format_modelfile, render_modelfile
from llmctl.modelfile.params import DEPRECATED_PARAMETERS, KNOWN_PARAMETERS, coerce_parameter
from llmctl.modelfile.parser import INSTRUCTIONS, MESSAGE_ROLES, parse, parse_commands
from llmctl.modelfile.types import Command, Message, Modelfile

__all__ = [
    "DEPRECATED_PARAMETERS",
    "INSTRUCTIONS",
    "KNOWN_PARAMETERS",
    "MESSAGE_ROLES",
    "Command",
    "Message",
    "Modelfile",
    "coerce_parameter",
    "format_command",
    "format_modelfile",
    "parse",
    "parse_commands",
    "render_modelfile",
]
