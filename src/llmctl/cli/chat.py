"""The interactive chat of `llmctl run NAME` on a terminal, modelled on Ollama's.

Line editing and history through readline (history file `$LLMCTL_HOME/history`); `\"\"\"` starts and ends a
multi-line message; commands: /set parameter NAME VALUE, /set system TEXT, /set verbose|quiet,
/set history|nohistory, /show info|license|modelfile|parameters|system|template, /load NAME, /clear, /bye,
/? (help). Ctrl+C stops an answer (or clears the line); Ctrl+D or /bye leaves.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, TextIO

from llmctl.errors import InvalidInput, LlmctlError

PROMPT, CONTINUE = ">>> ", "... "
HELP = """Available Commands:
  /set            Set session variables
  /show           Show model information
  /load <model>   Load a session or model
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command
  /? shortcuts    Help for keyboard shortcuts

Use \"\"\" to begin a multi-line message.
"""
HELP_SET = """Available Commands:
  /set parameter ...     Set a parameter
  /set system <string>   Set system message
  /set history           Enable history
  /set nohistory         Disable history
  /set verbose           Show LLM stats
  /set quiet             Disable LLM stats
"""
HELP_SHOW = """Available Commands:
  /show info         Show details for this model
  /show license      Show model license
  /show modelfile    Show Modelfile for this model
  /show parameters   Show parameters for this model
  /show system       Show system message
  /show template     Show prompt template
"""
HELP_SHORTCUTS = """Available keyboard shortcuts:
  Ctrl + a            Move to the beginning of the line (Home)
  Ctrl + e            Move to the end of the line (End)
  Ctrl + l            Clear the screen
  Ctrl + c            Stop the model from responding
  Ctrl + d            Exit (/bye)
"""


def _readline(history: Path | None) -> Any:
    try:
        import readline
    except ImportError:  # pragma: no cover - no readline on this Python
        return None
    if history is not None:
        try:
            history.parent.mkdir(parents=True, exist_ok=True)
            if history.exists():
                readline.read_history_file(str(history))
        except OSError:
            pass
    readline.set_history_length(1000)
    return readline


def stats_lines(stats: Any) -> list[str]:
    """Ollama's `--verbose` block."""

    def dur(s: float | None) -> str:
        if s is None:
            return "-"
        return f"{s * 1000:.2f}ms" if s < 1 else f"{s:.3f}s"

    lines = [f"total duration:       {dur(stats.total_seconds)}", f"load duration:        {dur(stats.load_seconds)}"]
    if stats.prompt_tokens is not None:
        lines.append(f"prompt eval count:    {stats.prompt_tokens} token(s)")
    if stats.prompt_seconds:
        lines.append(f"prompt eval duration: {dur(stats.prompt_seconds)}")
        if stats.prompt_tokens:
            lines.append(f"prompt eval rate:     {stats.prompt_tokens / stats.prompt_seconds:.2f} tokens/s")
    if stats.completion_tokens is not None:
        lines.append(f"eval count:           {stats.completion_tokens} token(s)")
    if stats.generate_seconds:
        lines.append(f"eval duration:        {dur(stats.generate_seconds)}")
    if stats.tokens_per_second:
        lines.append(f"eval rate:            {stats.tokens_per_second:.2f} tokens/s")
    return lines


class Repl:
    def __init__(self, session: Any, *, out: TextIO | None = None, err: TextIO | None = None,
                 read: Callable[[str], str] = input, history: Path | None = None, verbose: bool = False,
                 make_session: Callable[[str], Any] | None = None) -> None:
        self.session = session
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.read = read
        self.history = history
        self.save_history = history is not None
        self.verbose = verbose
        self.messages: list[dict[str, str]] = []
        self.make_session = make_session
        self.rl = _readline(history) if read is input else None

    # -- I/O ------------------------------------------------------------------------------------------------
    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _input(self, prompt: str) -> str:
        return self.read(prompt)

    def read_message(self) -> str | None:
        """One message, possibly over several lines with \"\"\"; None at end of input."""
        try:
            line = self._input(PROMPT)
        except EOFError:
            return None
        if not line.lstrip().startswith('"""') and not (line.startswith("/set system") and '"""' in line):
            return line
        head, _, rest = line.partition('"""')
        if rest.endswith('"""') and len(rest) >= 3:
            return head + rest[:-3]
        lines = [rest]
        while True:
            try:
                more = self._input(CONTINUE)
            except EOFError:
                return None
            if more.endswith('"""'):
                lines.append(more[:-3])
                return head + "\n".join(lines).strip("\n")
            lines.append(more)

    # -- the loop -------------------------------------------------------------------------------------------
    def run(self) -> None:
        self.say("Send a message (/? for help, /bye to exit)")
        while True:
            try:
                text = self.read_message()
            except KeyboardInterrupt:
                self.say("\nUse Ctrl + d or /bye to exit.")
                continue
            if text is None:
                self.say()
                break
            if not text.strip():
                continue
            if text.startswith("/"):
                if self.command(text.strip()) == "bye":
                    break
                continue
            self.ask(text)
        self._write_history()

    def _write_history(self) -> None:
        if self.rl is not None and self.save_history and self.history is not None:
            try:
                self.rl.write_history_file(str(self.history))
            except OSError:
                pass

    def ask(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})
        try:
            reply = self.session.chat(self.messages)
            for chunk in reply:
                self.out.write(chunk)
                self.out.flush()
        except KeyboardInterrupt:
            self.messages.pop()
            self.say("\n")
            return
        except LlmctlError as exc:
            self.messages.pop()
            self.err.write(f"\nError: {exc}\n")
            self.err.flush()
            return
        self.messages.append({"role": "assistant", "content": reply.text})
        self.say("\n")
        if self.verbose:
            self.err.write("\n".join(stats_lines(reply.stats)) + "\n\n")
            self.err.flush()

    # -- commands -------------------------------------------------------------------------------------------
    def command(self, line: str) -> str | None:
        words = line.split()
        cmd = words[0]
        if cmd in ("/bye", "/exit"):
            return "bye"
        if cmd in ("/?", "/help"):
            topic = words[1] if len(words) > 1 else ""
            self.out.write({"set": HELP_SET, "/set": HELP_SET, "show": HELP_SHOW, "/show": HELP_SHOW,
                            "shortcuts": HELP_SHORTCUTS, "shortcut": HELP_SHORTCUTS}.get(topic, HELP) + "\n")
        elif cmd == "/clear":
            self.messages.clear()
            self.say("Cleared session context")
        elif cmd == "/set":
            self._set(line, words)
        elif cmd == "/show":
            self._show(words[1] if len(words) > 1 else "")
        elif cmd == "/load":
            self._load(words[1] if len(words) > 1 else "")
        elif cmd == "/save":
            self.say("/save is not supported; write a Modelfile and use `llmctl create`")
        else:
            self.say(f"Unknown command '{cmd}'. Type /? for help")
        return None

    def _set(self, line: str, words: list[str]) -> None:
        what = words[1] if len(words) > 1 else ""
        if what == "parameter":
            if len(words) < 4:
                self.say("Usage:\n  /set parameter <name> <value>")
                return
            from llmctl.modelfile import coerce_parameter

            name, value = words[2].lower(), line.split(None, 3)[3]
            try:
                typed = coerce_parameter(name, value)
            except InvalidInput as exc:
                self.say(f"Couldn't set parameter: {exc}")
                return
            self.session.params[name] = typed
            self.say(f"Set parameter '{name}' to '{value}'")
        elif what == "system":
            text = line.split(None, 2)[2] if len(words) > 2 else ""
            text = text.strip()
            if text.startswith('"') and text.endswith('"') and len(text) >= 2:
                text = text[1:-1]
            self.session.system = text
            self.say("Set system message.")
        elif what in ("verbose", "quiet"):
            self.verbose = what == "verbose"
            self.say("Set 'verbose' mode." if self.verbose else "Set 'quiet' mode.")
        elif what in ("history", "nohistory"):
            self.save_history = what == "history"
            self.say(f"Set '{what}' mode.")
        elif what in ("wordwrap", "nowordwrap"):
            self.say(f"Set '{what}' mode.")
        else:
            self.out.write(HELP_SET + "\n")

    def _show(self, what: str) -> None:
        s, model = self.session, self.session.model
        if what == "info":
            f = model.facts
            rows = [("architecture", f.architecture), ("parameters", f.parameters),
                    ("context length", f.context_size), ("quantization", f.quantization),
                    ("prompt mode", s.prompt_mode), ("engine", s.backend)]
            self.say("  Model")
            for k, v in rows:
                if v is not None:
                    self.say(f"    {k:<16}{v}")
            if model.adapters or s.lora:
                self.say(f"    {'adapters':<16}{len(model.adapters) + len(s.lora)}")
            self.say()
        elif what == "license":
            self.say("\n\n".join(model.licenses) if model.licenses else "No license was specified for this model.")
        elif what == "modelfile":
            from llmctl.api.manage import modelfile_text

            self.out.write(modelfile_text(s.settings, model))
            self.say()
        elif what == "parameters":
            params = {**(model.parameters or {}), **s.params}
            if not params:
                self.say("No parameters were specified for this model.")
                return
            self.say("Model defined parameters:" if not s.params else "Parameters:")
            for k, v in sorted(params.items()):
                for item in v if isinstance(v, list) else [v]:
                    self.say(f"{k:<30}{item!r}" if isinstance(item, str) else f"{k:<30}{item}")
        elif what == "system":
            system = s.system if s.system is not None else model.system
            self.say(system if system else "No system message was specified for this model.")
        elif what == "template":
            template = model.template or model.chat_template
            if template:
                self.say(template)
            else:
                self.say("No prompt template was specified for this model (a base model: llmctl writes a plain "
                         "Q:/A: transcript).")
        else:
            self.out.write(HELP_SHOW + "\n")

    def _load(self, name: str) -> None:
        if not name:
            self.say("Usage:\n  /load <modelname>")
            return
        if self.make_session is None:
            self.say("/load is not available here")
            return
        self.say(f"Loading model '{name}'")
        try:
            new = self.make_session(name)
        except LlmctlError as exc:
            self.say(f"Couldn't load model: {exc}")
            return
        self.session.close()
        self.session = new
        self.messages.clear()


def repl(session: Any, *, history: Path | None = None, verbose: bool = False,
         make_session: Callable[[str], Any] | None = None) -> None:
    """Run the interactive chat on the terminal until /bye or Ctrl+D; closes the session it ends with."""
    r = Repl(session, history=history, verbose=verbose, make_session=make_session)
    try:
        r.run()
    finally:
        r.session.close()
