"""A real Chromium against a real `llmctl serve`: what a web page the user visits can do to the gateway.

Headless Chromium (`--dump-dom`) loads pages from a small local web server under a name it resolves to
127.0.0.1 (`--host-resolver-rules`), as DNS would for an attacker's domain, and runs their `fetch()` calls:

- a page at `evil.example` sends the no-preflight POST any page can send, reads `/api/tags`, and tries a
  JSON write: the gateway refuses all three (Origin) and nothing changes in the store;
- the same gateway opened as `http://evil.example:PORT/` (DNS rebinding) answers 403: the Host is refused;
- a page at `http://localhost:PORT` (an allowed origin, as Ollama's defaults) reads and writes with JSON.
"""

from __future__ import annotations

import shutil
import subprocess
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Iterator

import pytest

from fixtures_gateway import RunningGateway, metric_value, private_home, start_gateway
from fixtures_registry import LocalServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
PAGE = """<html><body>waiting<script>
(async () => {{
  const gw = "{gateway}", out = [];
  const body = JSON.stringify({{source: "tiny:v1", destination: "{destination}"}});
  try {{ const r = await fetch(gw + "/api/copy", {{method: "POST", body, mode: "no-cors"}}); out.push("simple:" + r.type); }}
  catch (e) {{ out.push("simple:error"); }}
  try {{ const r = await fetch(gw + "/api/tags"); out.push("read:" + r.status + ":" + (await r.text()).includes("tiny")); }}
  catch (e) {{ out.push("read:blocked"); }}
  try {{ const r = await fetch(gw + "/api/copy", {{method: "POST", headers: {{"Content-Type": "application/json"}}, body}});
        out.push("json:" + r.status); }}
  catch (e) {{ out.push("json:blocked"); }}
  document.body.textContent = "DONE " + out.join(" ");
}})();
</script></body></html>"""


class Pages(LocalServer):
    """A web server for one page, reachable under any name Chromium maps to 127.0.0.1."""

    def __init__(self, html: str) -> None:
        page = html.encode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

        self.serve(Handler)


def chromium_dom(url: str) -> str:
    """The page's DOM after its scripts ran, in headless Chromium with evil.example resolving to 127.0.0.1."""
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run scripts/install-system-deps.sh")
    out = subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--virtual-time-budget=20000", "--host-resolver-rules=MAP evil.example 127.0.0.1",
                          "--dump-dom", url], capture_output=True, text=True, timeout=120)
    return out.stdout


@pytest.fixture(scope="module")
def browser_gw(tmp_path_factory: pytest.TempPathFactory, gateway_store: Path) -> Iterator[RunningGateway]:
    gw = start_gateway(private_home(tmp_path_factory.mktemp("browser"), gateway_store), env={"LLMCTL_OFFLINE": "1"})
    try:
        yield gw
    finally:
        assert gw.stop() == 0


def _names(gw: RunningGateway) -> set[str]:
    return {m["name"] for m in gw.http.get("/api/tags").json()["models"]}


def test_a_page_on_another_origin_can_neither_write_nor_read(browser_gw: RunningGateway) -> None:
    index = (browser_gw.home / "store" / "index.json").read_bytes()
    refused = metric_value(browser_gw.metrics(), "llmctl_requests_refused_total", reason="origin")
    pages = Pages(PAGE.format(gateway=browser_gw.url, destination="stolen"))
    try:
        dom = chromium_dom(f"http://evil.example:{pages.port}/")
    finally:
        pages.stop()
    assert "DONE simple:opaque read:blocked json:blocked" in dom, dom
    assert "stolen:latest" not in _names(browser_gw)
    assert (browser_gw.home / "store" / "index.json").read_bytes() == index
    # the no-cors POST and the read reached the gateway and were refused; the JSON write never left the
    # browser (its preflight was refused)
    assert metric_value(browser_gw.metrics(), "llmctl_requests_refused_total", reason="origin") - refused >= 3


def test_a_rebinding_name_gets_403(browser_gw: RunningGateway) -> None:
    dom = chromium_dom(f"http://evil.example:{browser_gw.port}/api/tags")
    assert "is not allowed" in dom and "LLMCTL_ALLOWED_HOSTS" in dom, dom
    assert "tiny" not in dom


def test_a_page_on_an_allowed_origin_reads_and_writes(browser_gw: RunningGateway) -> None:
    typed = metric_value(browser_gw.metrics(), "llmctl_requests_refused_total", reason="content_type")
    pages = Pages(PAGE.format(gateway=browser_gw.url, destination="from-page"))
    try:
        dom = chromium_dom(f"http://localhost:{pages.port}/")
    finally:
        pages.stop()
    # the no-cors POST is text/plain from a browser: refused (415) though the origin is allowed
    assert "DONE simple:opaque read:200:true json:200" in dom, dom
    assert metric_value(browser_gw.metrics(), "llmctl_requests_refused_total", reason="content_type") == typed + 1
    assert "from-page:latest" in _names(browser_gw)
    assert browser_gw.http.request("DELETE", "/api/delete", json={"model": "from-page"}).status_code == 200
