"""The init container image recipe (images/llmctl-init): it builds what plans name by default, runs as a
non-root user, pins its base, and its build script parses. (No container engine runs in CI: the image is
linted here, and its contents are checked against a real `llmctl export` in test_plan_init_container.py.)"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from llmctl import __version__
from llmctl.plan.render_common import RenderOptions

IMAGE = Path(__file__).resolve().parent.parent / "images" / "llmctl-init"
ROOT = IMAGE.parent.parent


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (IMAGE / "Dockerfile").read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
            for line in (raw.strip() for raw in text.splitlines()) if line and not line.startswith("#")]


def test_dockerfile_is_pinned_non_root_and_installs_only_the_export_path():
    ins = _instructions()
    assert {k for k, _ in ins} <= {"ARG", "FROM", "LABEL", "COPY", "RUN", "ENV", "USER", "CMD", "WORKDIR"}
    args = {v.split("=", 1)[0]: v.split("=", 1)[1] for k, v in ins if k == "ARG" and "=" in v}
    base = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.\d+-slim-\w+", base), base  # a pinned tag, never latest
    user = [v for k, v in ins if k == "USER"]
    assert user and user[-1].split(":")[0] == "65532"  # the uid the rendered pods' fsGroup uses
    run = " ".join(v for k, v in ins if k == "RUN")
    assert "--no-deps" in run and "-r /tmp/llmctl-init/requirements.txt" in run and "--no-cache-dir" in run
    assert "llama-cpp-python" not in (IMAGE / "requirements.txt").read_text()


def test_build_script_parses_and_tags_what_plans_use():
    script = IMAGE / "build.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True, timeout=30).returncode == 0
    if shutil.which("shellcheck"):
        out = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout
    assert "ghcr.io/llmctl/llmctl-init:$version" in script.read_text()
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert version == __version__
    assert RenderOptions().init_image_ref == f"ghcr.io/llmctl/llmctl-init:{version}"
