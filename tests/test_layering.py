"""The layers of docs/design.md hold: arrows go down only, even inside functions.

`cli/` and `server/` are the two front doors; both call the core (`api/`), which calls `sources/`, `runtime/`,
`artifact/`, `modelfile/`, `oci/` and `plan/`. An import that runs upward, even one hidden inside a function
or spelled `importlib.import_module("...")`, makes the core depend on a front door (the gateway's FastAPI in
`llmctl pull`, the terminal in a library call), so every module's syntax tree is walked here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import llmctl

PACKAGE = Path(llmctl.__file__).parent
FRONT_DOORS = ("llmctl.cli", "llmctl.server")
# below the core API: may not import the core or a front door
LOWER = ("llmctl.runtime", "llmctl.sources", "llmctl.artifact", "llmctl.oci", "llmctl.modelfile", "llmctl.plan",
         "llmctl.loadgen")
# the shared foundations every layer imports
FOUNDATIONS = ("llmctl.errors", "llmctl.names", "llmctl.progress", "llmctl.settings")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module `source` imports, anywhere in it: `import x`, `from x import y` (relative ones resolved,
    and `from llmctl import api` as `llmctl.api`), and `importlib.import_module("x")` / `__import__("x")`
    with a literal name."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__"):
                found.add(node.args[0].value)
    return found


def forbidden_for(module: str) -> tuple[str, ...]:
    if module.startswith(LOWER) or module in FOUNDATIONS:
        return ("llmctl.api", *FRONT_DOORS)
    if module == "llmctl.api" or module.startswith("llmctl.api."):
        return FRONT_DOORS
    return ()


def violations() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        banned = forbidden_for(module)
        if not banned:
            continue
        for target in sorted(imported_modules(path.read_text(), module, path.name == "__init__.py")):
            if any(target == b or target.startswith(b + ".") for b in banned):
                out.append(f"{path.relative_to(PACKAGE.parent)}: {module} imports {target}")
    return out


def test_no_module_imports_a_layer_above_it() -> None:
    assert violations() == []


def test_every_layer_is_checked() -> None:
    """A new top-level module or package must be placed in a layer here, not slip past the check."""
    known = {"llmctl.api", "llmctl.cli", "llmctl.server", "llmctl.data", *LOWER, *FOUNDATIONS}
    tops = {module_name(p) for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    tops |= {f"llmctl.{p.name}" for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert tops - known == set()


@pytest.mark.parametrize(("source", "module", "expected"), [
    ("def f():\n    from llmctl.api.models import get_model\n", "llmctl.runtime.scheduler", "llmctl.api.models"),
    ("import importlib\nimportlib.import_module('llmctl.server.app')\n", "llmctl.sources.hf", "llmctl.server.app"),
    ("from importlib import import_module\nimport_module('llmctl.cli.chat')\n", "llmctl.oci.layout", "llmctl.cli.chat"),
    ("from llmctl import api\n", "llmctl.artifact.model", "llmctl.api"),
    ("from ..api import models\n", "llmctl.runtime.client", "llmctl.api.models"),
    ("class A:\n    def m(self):\n        import llmctl.cli.app\n", "llmctl.plan.solve", "llmctl.cli.app"),
])
def test_the_walk_sees_hidden_imports(source: str, module: str, expected: str) -> None:
    found = imported_modules(source, module)
    assert expected in found
    assert any(expected == b or expected.startswith(b + ".") for b in forbidden_for(module))


def test_api_may_use_the_lower_layers_but_no_front_door() -> None:
    assert forbidden_for("llmctl.api.serve") == FRONT_DOORS
    assert forbidden_for("llmctl.server.app") == () and forbidden_for("llmctl.cli.run") == ()


ENV_READERS = {  # the modules that may read a variable themselves, and why
    "llmctl/settings.py": "the one home of settings",
    "llmctl/cli/app.py": "LLMCTL_DEBUG, read before Settings exist so a failure while reading them can show a traceback",
    "llmctl/runtime/engine.py": "LD_LIBRARY_PATH, extended for the engine's child process (passed through, not a setting)",
}


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name) \
        and node.value.id == "os"


def environment_reads(source: str) -> list[int]:
    """Lines that read a variable: `os.environ.get/[...]/in`, `os.getenv`. Copying the whole environment for a
    child process (`{**os.environ, ...}`) passes it through and is not a read."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                (node.func.attr == "get" and _is_environ(node.func.value))
                or (node.func.attr == "getenv" and isinstance(node.func.value, ast.Name) and node.func.value.id == "os")):
            lines.append(node.lineno)
        elif isinstance(node, ast.Subscript) and _is_environ(node.value) and isinstance(node.ctx, ast.Load):
            lines.append(node.lineno)
        elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
            lines.append(node.lineno)
    return lines


def test_environment_is_read_in_settings_only() -> None:
    """docs/design.md: Settings is read from the environment once and passed down; nothing deep reads os.environ."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).as_posix()
        if rel not in ENV_READERS:
            found += [f"{rel}:{line}" for line in environment_reads(path.read_text())]
    assert found == []
    assert environment_reads("import os\nx = os.environ.get('A')\ny = os.getenv('B')\nz = os.environ['C']\n"
                             "w = 'D' in os.environ\nenv = {**os.environ, 'E': '1'}\n") == [2, 3, 4, 5]
