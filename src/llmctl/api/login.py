"""`login REGISTRY` / `logout REGISTRY`: credentials checked against the registry, then kept where Docker
keeps them (`$DOCKER_CONFIG/config.json`, or the configured credential helper), shared with docker, skopeo
and oras.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from llmctl.api.pull import check_online
from llmctl.errors import InvalidReference, UsageError
from llmctl.oci.reference import DOMAIN
from llmctl.oci.registry import Credentials, DockerConfig, RetryPolicy, connect
from llmctl.settings import Settings


@dataclass(frozen=True)
class LoggedIn:
    registry: str
    username: str
    stored_in: str
    auth_required: bool  # False when the registry answered without asking for credentials


def normalize_registry(text: str) -> str:
    """`https://host:5000/`, `host:5000` and `HOST:5000` are one registry; Docker Hub has several names."""
    host = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", text.strip()).split("/", 1)[0].lower()
    if not host or not DOMAIN.match(host):
        raise InvalidReference(f"invalid registry {text!r}: expected host[:port], e.g. registry.example.com:5000")
    if host in ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"):
        return "docker.io"
    return host


def login(
    settings: Settings,
    registry: str,
    username: str,
    password: str,
    *,
    insecure: bool = False,
    ca_cert: Path | None = None,
    retry: RetryPolicy | None = None,
) -> LoggedIn:
    if not username:
        raise UsageError("a username is required (--username)")
    if not password:
        raise UsageError("a password is required (--password-stdin, or type it when asked)")
    registry = normalize_registry(registry)
    check_online(settings, registry)
    creds = Credentials(username, password)
    with connect(settings, registry, insecure=insecure, ca_cert=ca_cert, credentials=creds, retry=retry) as client:
        required = client.check_credentials()
    stored = DockerConfig(settings.docker_config).store(registry, creds)
    return LoggedIn(registry, username, stored, required)


def logout(settings: Settings, registry: str) -> bool:
    """Forget the credentials of a registry; False when there were none."""
    return DockerConfig(settings.docker_config).erase(normalize_registry(registry))
