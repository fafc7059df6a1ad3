"""plan/ is pure: importing it starts no HTTP, subprocess or filesystem-walking machinery, it reads no
environment, and its modules import each other without cycles (nothing imported inside a function to hide one)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

PLAN = Path(__file__).resolve().parent.parent / "src" / "llmctl" / "plan"
FORBIDDEN = ("subprocess", "shutil", "tempfile", "glob", "socket", "ssl", "http.client", "urllib.request",
             "httpx", "requests", "huggingface_hub", "llmctl.api", "llmctl.oci.registry", "llmctl.cli")


def test_import_llmctl_plan_pulls_in_no_io_module():
    code = ("import sys; before = set(sys.modules); import llmctl.plan; "
            f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules and m not in before))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "", f"import llmctl.plan loaded {out.stdout.strip()}"


def _modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text(), str(p)) for p in PLAN.glob("*.py")}


def _plan_imports(node: ast.AST) -> set[str]:
    out = set()
    for n in ast.walk(node) if not isinstance(node, ast.Module) else node.body:
        if isinstance(n, ast.ImportFrom) and n.module:
            if n.module.startswith("llmctl.plan."):
                out.add(n.module.split(".")[2])
            elif n.module == "llmctl.plan":
                out |= {a.name for a in n.names}
    return out


def test_no_import_cycles_and_no_imports_inside_functions():
    mods = _modules()
    graph = {name: _plan_imports(tree) & set(mods) for name, tree in mods.items() if name != "__init__"}
    hidden = [f"{name}.{fn.name}" for name, tree in mods.items() for fn in ast.walk(tree)
              if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
              if any(isinstance(n, (ast.Import, ast.ImportFrom)) and (getattr(n, "module", "") or "").startswith("llmctl")
                     for n in ast.walk(fn))]
    assert not hidden, f"llmctl imports inside functions: {hidden}"
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            assert state.get(dep) != 1, "import cycle: " + " -> ".join(path + [node, dep])
            if dep not in state:
                visit(dep, path + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_plan_reads_no_environment_and_runs_nothing():
    for path in PLAN.glob("*.py"):
        text = path.read_text()
        for needle in ("os.environ", "os.getenv", "subprocess", "shutil.which"):
            assert needle not in text, f"{path.name} uses {needle}"
