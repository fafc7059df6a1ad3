"""What a registry's failures mean to a user: one typed, one-line error per response or broken connection.

Statuses map to the hierarchy in `llmctl.errors` (401/403 AuthError, 404 NotFound, 429/5xx and transport
failures RegistryError), with the distribution spec's `errors[]` body appended when there is one.
"""

from __future__ import annotations

import json
import sys

from llmctl.errors import AuthError, NotFound, RegistryError
from llmctl.names import split_host
from llmctl.oci.registry.http11 import ConnectError, Response, Timeout, TransportError, UnknownHost
from llmctl.oci.registry.tls import tls_hint


def registry_message(resp: Response) -> str:
    """The `errors[]` of a distribution error body, as `CODE: message`; empty when there is none."""
    try:
        data = json.loads(resp.read(65536) or b"null")
        errors = data.get("errors") if isinstance(data, dict) else None
        if errors:
            return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors[:3])
    except (ValueError, AttributeError, TransportError):
        pass
    return ""


def is_tls_error(exc: BaseException) -> bool:
    """A TLS handshake failure: not transient, so never retried."""
    ssl = sys.modules.get("ssl")  # not imported: no TLS was spoken, so no TLS error
    seen: BaseException | None = exc
    while seen is not None and ssl is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def is_unresolvable(exc: BaseException) -> bool:
    """A host name that does not resolve: every retry would fail the same way (a transfer gives up at once)."""
    return isinstance(exc, UnknownHost)


def is_cert_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if type(seen).__name__ == "SSLCertVerificationError" or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "[Errno 111]" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text or "[Errno -2]" in text:
        return "unknown host"
    return text.splitlines()[0][:200]


def response_error(registry: str, resp: Response, what: str, *, has_credentials: bool, attempts: int) -> Exception:
    """A typed, one-line error for a response that is not what the caller needed."""
    status = resp.status_code
    detail = registry_message(resp)
    suffix = f": {detail}" if detail else ""
    if status == 401:
        if has_credentials:
            return AuthError(f"{registry} refused the credentials for {what}{suffix}",
                             hint=f"run `llmctl login {registry}` with an account that has access")
        return AuthError(f"{registry} requires authentication for {what}", hint=f"run `llmctl login {registry}`")
    if status == 403:
        return AuthError(f"access to {what} denied by {registry}{suffix}",
                         hint="the account lacks permission for this repository")
    if status == 404:
        return NotFound(f"{what} not found on {registry}{suffix}")
    if status == 429:
        return RegistryError(f"{registry} is rate limiting requests (429) after {attempts} attempts",
                             hint="wait and try again")
    if status >= 500:
        return RegistryError(f"{registry} failed with {status} {resp.reason_phrase} after {attempts} attempts{suffix}")
    return RegistryError(f"{registry} answered {status} {resp.reason_phrase} for {what}{suffix}")


def transport_error(registry: str, exc: BaseException) -> RegistryError:
    if is_cert_error(exc):
        return RegistryError(f"TLS certificate of {registry} is not trusted: {reason(exc)}", hint=tls_hint(registry))
    if isinstance(exc, UnknownHost):  # the registry's name, or a host its redirect named
        elsewhere = f" (reached through registry {registry})" if exc.host != split_host(registry)[0] else ""
        return RegistryError(f"cannot resolve {exc.host}: unknown host{elsewhere}")
    if isinstance(exc, Timeout):
        return RegistryError(f"registry {registry} timed out: {reason(exc)}")
    if isinstance(exc, ConnectError):
        return RegistryError(f"registry {registry} is unreachable: {reason(exc)}")
    return RegistryError(f"connection to {registry} lost: {reason(exc)}")


__all__ = ["is_cert_error", "is_tls_error", "is_unresolvable", "reason", "registry_message", "response_error", "transport_error"]
