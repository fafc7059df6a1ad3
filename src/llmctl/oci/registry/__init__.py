"""OCI distribution: the registry client (client.py) on its HTTP/1.1 transport (http11.py), error mapping
(errors.py), auth (auth.py), TLS rules (tls.py), push and pull, and what they share (transfer.py).

`connect()` is the one place a `Settings` and a command's flags become a configured client, so push, pull,
login and the automatic pull of `run`/`create` all treat TLS, credentials and retries the same way.
"""

from __future__ import annotations

from pathlib import Path

from llmctl.oci.registry.auth import Credentials, DockerConfig
from llmctl.oci.registry.client import RegistryClient, RetryPolicy
from llmctl.oci.registry.tls import TlsOptions
from llmctl.settings import Settings


def tls_options(settings: Settings, *, insecure: bool = False, ca_cert: Path | None = None) -> TlsOptions:
    return TlsOptions(
        insecure=insecure,
        ca_cert=ca_cert or settings.ca_cert,
        insecure_registries=settings.insecure_registries,
        docker_config=settings.docker_config,
    )


def connect(
    settings: Settings,
    registry: str,
    *,
    insecure: bool = False,
    ca_cert: Path | None = None,
    credentials: Credentials | None = None,
    retry: RetryPolicy | None = None,
) -> RegistryClient:
    """A client for `registry` with the stored credentials (unless given) and the command's TLS flags."""
    if credentials is None:
        credentials = DockerConfig(settings.docker_config).get(registry)
    return RegistryClient(
        registry,
        credentials=credentials,
        tls=tls_options(settings, insecure=insecure, ca_cert=ca_cert),
        retry=retry or RetryPolicy(attempts=max(1, settings.registry_retries)),
    )


__all__ = ["Credentials", "DockerConfig", "RegistryClient", "RetryPolicy", "TlsOptions", "connect", "tls_options"]
