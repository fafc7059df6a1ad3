"""How a registry is reached: scheme, certificate trust, and Docker's rules for insecure registries.

TLS is verified by default against the system store (which honours `SSL_CERT_FILE`/`SSL_CERT_DIR`), plus
an extra CA from `--ca-cert`/`LLMCTL_CA_CERT`, plus Docker's per-registry `certs.d/<host>/ca.crt`, so a
private CA that already works for `docker pull` works here. `--insecure` (or the registry in
`LLMCTL_INSECURE_REGISTRIES`) allows plain HTTP and unverified TLS. Loopback registries may fall back from
HTTPS to plain HTTP the way Docker treats them, but a loopback HTTPS registry is still verified: a bad
certificate is an error, never a silent downgrade.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llmctl.errors import UsageError
from llmctl.names import is_loopback

if TYPE_CHECKING:  # ssl costs 25-50 ms to import: only registries that speak TLS pay for it
    import ssl


@dataclass(frozen=True)
class TlsOptions:
    """What the user said about transport security for one command."""

    insecure: bool = False
    ca_cert: Path | None = None
    insecure_registries: tuple[str, ...] = ()
    docker_config: Path | None = None

    def allows_http(self, registry: str) -> bool:
        """Plain HTTP is tried only here: --insecure, a listed insecure registry, or loopback."""
        return self.insecure or registry in self.insecure_registries or is_loopback(registry)

    def skips_verification(self, registry: str) -> bool:
        return self.insecure or registry in self.insecure_registries

    def ssl_context(self, registry: str) -> ssl.SSLContext | bool:
        """False when verification is off, else a context that trusts the system store plus our CAs."""
        if self.skips_verification(registry):
            return False
        import ssl

        ctx = ssl.create_default_context()
        extra = [self.ca_cert] if self.ca_cert else []
        if self.docker_config is not None:
            per_host = self.docker_config / "certs.d" / registry / "ca.crt"
            if per_host.is_file():
                extra.append(per_host)
        for cafile in extra:
            try:
                ctx.load_verify_locations(cafile=str(cafile))
            except FileNotFoundError:
                raise UsageError(f"--ca-cert {cafile}: no such file") from None
            except ssl.SSLError as exc:
                raise UsageError(f"--ca-cert {cafile}: not a PEM certificate ({exc.reason or exc})") from None
        return ctx


def unverified_context() -> "ssl.SSLContext":
    """TLS without certificate checks: --insecure, a listed insecure registry."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def speaks_tls(host: str, port: int, timeout: float = 15.0) -> bool:
    """Does the server at host:port complete a TLS handshake? Only asked where plain HTTP is allowed,
    to choose the scheme; the requests that follow over HTTPS verify the certificate as usual, so an
    untrusted certificate is still an error and never a reason to fall back to HTTP. Without the
    verifying context this costs no CA store load (25-50 ms) for a plain-HTTP loopback registry.
    Raises OSError when nothing answers at all."""
    import socket
    import ssl

    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            with unverified_context().wrap_socket(sock, server_hostname=host):
                return True
        except ssl.SSLError:
            return False


def tls_hint(registry: str) -> str:
    return (f"pass --ca-cert FILE with the CA that signed {registry}'s certificate (or set SSL_CERT_FILE), "
            "or --insecure to skip verification")
