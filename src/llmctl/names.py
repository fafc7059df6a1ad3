"""The one home for names users type: model names, hosts, and what a host means.

- Model names: `parse_name`/`short` apply the configured default registry and namespace (`LLMCTL_REGISTRY`)
  to `oci.reference`'s grammar, which stays the only parser of references.
- Hosts: `split_host` (`host[:port]`, IPv6 in brackets), `parse_host` (`LLMCTL_HOST` and `serve --host`, for
  both listening and connecting), `is_loopback` (which registries and endpoints `LLMCTL_OFFLINE` still allows
  and which may use plain HTTP), `is_hf_name` (which names go to Hugging Face rather than an OCI registry).

Everything here is pure and cheap to import (no store, no network), so every layer may use it: `oci/`,
`sources/`, `runtime/`, `api/` and both front doors. Opening the store is not a name: see `api.models.open_store`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from llmctl.errors import InvalidInput
from llmctl.oci.reference import HF_DOMAINS, Reference, parse
from llmctl.settings import Settings

GATEWAY_PORT = 11434  # Ollama's port: `llmctl serve` replaces `ollama serve` for its clients
LOOPBACK_NAMES = ("localhost",)
HF_HOSTS = HF_DOMAINS  # `hf.co/ORG/REPO` and `huggingface.co/ORG/REPO`; the reference grammar lets them keep capitals


# -- model names -----------------------------------------------------------------------------------------------
def parse_name(settings: Settings, text: str) -> Reference:
    """A model name as typed, with the configured default registry and namespace filled in."""
    return parse(text, registry=settings.registry, namespace=settings.namespace)


def short(settings: Settings, ref: Reference) -> str:
    """A reference as the user would type it: the configured default registry and namespace dropped."""
    return ref.short(settings.registry, settings.namespace)


def is_hf_name(name: str) -> bool:
    """`hf.co/ORG/REPO[:QUANT]` (or `huggingface.co/...`, with or without `https://`): a Hugging Face repository."""
    text = re.sub(r"^https?://", "", name.strip(), flags=re.IGNORECASE)
    return "/" in text and is_hf_host(text.split("/", 1)[0])


def is_hf_host(host: str) -> bool:
    return host.lower() in HF_HOSTS


# -- hosts -----------------------------------------------------------------------------------------------------
def _split(hostport: str) -> tuple[str, str]:
    """(host, port text) of `host`, `host:port`, `[v6]`, `[v6]:port`, or a bare IPv6 address (no port)."""
    text = hostport.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else ""
    if text.count(":") > 1:
        return text, ""
    host, _, port = text.partition(":")
    return host, port


def split_host(hostport: str) -> tuple[str, int | None]:
    """`host[:port]` (IPv6 in brackets) -> (host, port); port None when absent or not a number."""
    host, port = _split(hostport)
    return host, int(port) if port.isdigit() else None


def is_loopback(host: str) -> bool:
    """Whether `host` (a `:port` may follow) can only mean this machine.

    `localhost` and `*.localhost` (RFC 6761), 127.0.0.0/8, `::1` bare or in brackets, and IPv4-mapped
    loopback (`::ffff:127.0.0.1`, which Python's `is_loopback` does not count). A name that merely starts
    with "127." (`127.example.com`) is not loopback.
    """
    name, _ = split_host(host)
    name = name.lower().rstrip(".")
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])  # a zone (`fe80::1%eth0`) is not part of it
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool((mapped or address).is_loopback)


@dataclass(frozen=True)
class HostAddress:
    """Where a gateway listens or is reached: `LLMCTL_HOST` / `serve --host` after parsing."""

    scheme: str
    host: str
    port: int

    @property
    def url(self) -> str:
        """The base URL a client connects to; a wildcard listen address (0.0.0.0, ::) means this machine."""
        return url_for(self.host, self.port, self.scheme)


def parse_host(text: str, default_port: int = GATEWAY_PORT) -> HostAddress:
    """`LLMCTL_HOST`'s forms, as Ollama's `OLLAMA_HOST`: "host:port", "host", ":port", "[::1]:port",
    "http://host:port", "https://host" (port 443). An empty host is 127.0.0.1; a path is ignored."""
    raw = text.strip()
    scheme, sep, rest = raw.partition("://")
    if not sep:
        scheme, rest = "http", raw
    scheme = scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidInput(f"not a host:port: {text!r} (only http:// and https:// URLs)")
    host, port = _split(rest.split("/", 1)[0])
    if port and (not port.isdigit() or int(port) > 65535):
        raise InvalidInput(f"not a host:port: {text!r}")
    fallback = 443 if scheme == "https" and sep else default_port
    return HostAddress(scheme, host or "127.0.0.1", int(port) if port else fallback)


def url_for(host: str, port: int, scheme: str = "http") -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    return f"{scheme}://[{shown}]:{port}" if ":" in shown else f"{scheme}://{shown}:{port}"
