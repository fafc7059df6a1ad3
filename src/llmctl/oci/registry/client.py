"""The distribution spec's HTTP conventions over `http11.Transport`: scheme discovery, auth, retries.

Why our own transport and not oras-py's: oras-py's push reads a whole blob into memory (273 MB RSS for a
253 MB model), its pull does not verify digests, and it has no Range resume and no cross-repository mount.
A streaming client is small when the store already does content addressing (docs/design.md). Why not
httpx: see `http11.py`.

One `RegistryClient` per registry and command; it is shared by the transfer threads (the connection pool is
thread-safe). Every request names the token scopes it needs, so auth happens before a body is sent:
a 253 MB upload is never sent twice because of a 401.

Credentials stay home, as containerd and distribution's client keep them: `Authorization` goes only to the
registry's own origin (scheme, host and port of `/v2/`), so an upload `Location` or a redirect elsewhere (a
storage bucket, another host, plain HTTP) gets none; and the token realm a registry names must be HTTPS,
unless the registry itself is an allowed insecure one (LLMCTL_INSECURE_REGISTRIES, `--insecure`) or both are
plain-HTTP loopback: Basic credentials never travel in clear text to wherever a challenge points.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlencode, urlsplit

from llmctl import __version__
from llmctl.errors import AuthError, RegistryError
from llmctl.names import is_loopback, split_host
from llmctl.oci.registry import errors
from llmctl.oci.registry.auth import (
    Challenge,
    Credentials,
    TokenCache,
    merge_scopes,
    parse_challenge,
    token_from_response,
)
from llmctl.oci.registry.http11 import Body, Response, Transport, TransportError, connect_error
from llmctl.oci.registry.tls import TlsOptions, speaks_tls, tls_hint, unverified_context

USER_AGENT = f"llmctl/{__version__}"
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter for connection failures, 429 and 5xx; `Retry-After` is honoured."""

    attempts: int = 5
    base: float = 0.5
    cap: float = 10.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after), 60.0)
        return min(self.cap, self.base * (2**attempt)) * (0.5 + random.random() / 2)


def api_host(registry: str) -> str:
    """Docker Hub's name and its API endpoint differ; every other registry is its own endpoint."""
    return "registry-1.docker.io" if registry == "docker.io" else registry


class RegistryClient:
    """Talks to one registry. Use as a context manager; `request()` is the only way out."""

    def __init__(
        self,
        registry: str,
        *,
        credentials: Credentials | None = None,
        tls: TlsOptions | None = None,
        retry: RetryPolicy | None = None,
        tokens: TokenCache | None = None,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.registry = registry
        self.credentials = credentials
        self.tls = tls or TlsOptions()
        self.retry = retry or RetryPolicy()
        self.tokens = tokens or TokenCache()
        self._sleep = sleep
        self._http = Transport(tls_context=self._tls_context, headers={"User-Agent": USER_AGENT},
                               timeout=timeout, connect_timeout=15.0)
        self._base: str | None = None
        self._challenge: Challenge | None = None
        self._lock = threading.Lock()
        self._token_lock = threading.Lock()

    def _tls_context(self):  # type: ignore[no-untyped-def]
        ctx = self.tls.ssl_context(self.registry)
        return ctx if ctx is not False else unverified_context()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- endpoint and auth ---------------------------------------------------------------------------
    @property
    def base(self) -> str:
        with self._lock:
            if self._base is None:
                self._ping()
            assert self._base is not None
            return self._base

    def _ping(self) -> None:
        """`GET /v2/` over HTTPS (then HTTP where allowed): learns the scheme and the auth challenge."""
        host = api_host(self.registry)
        schemes = ["https", "http"] if self.tls.allows_http(self.registry) else ["https"]
        first_error: BaseException | None = None
        for scheme in schemes:
            try:
                if scheme != schemes[-1] and not self._speaks_tls(host):
                    continue  # a plain-HTTP server: the next scheme
                # TLS spoken to a plain-HTTP port fails at once and for good: no retries before the fallback.
                resp = self._send_retrying("GET", f"{scheme}://{host}/v2/", headers={}, body=None, stream=False,
                                           attempts=1 if scheme != schemes[-1] else None)
            except TransportError as exc:
                if errors.is_cert_error(exc):
                    raise RegistryError(f"TLS certificate of {self.registry} is not trusted: {errors.reason(exc)}",
                                        hint=tls_hint(self.registry)) from None
                first_error = first_error or exc
                continue
            if resp.status_code == 401:
                self._challenge = parse_challenge(resp.headers.get("WWW-Authenticate"))
            elif resp.status_code >= 400 and resp.status_code != 404:
                raise self.error(resp, f"{self.registry}/v2/")
            self._base = f"{scheme}://{host}"
            return
        assert first_error is not None
        raise self.transport_error(first_error)

    def _speaks_tls(self, host: str) -> bool:
        name, port = split_host(host)
        try:
            return speaks_tls(name, port or 443)
        except OSError as exc:
            raise connect_error(exc, name) from exc

    def _auth_header(self, scopes: tuple[str, ...], *, stale: str | None = None) -> str | None:
        """The Authorization value for a request needing `scopes`; `stale` is a header the registry just
        refused, which must not be offered again."""
        ch = self._challenge
        if ch is None:
            return None
        if ch.scheme == "basic":
            return self.credentials.basic_header() if self.credentials and self.credentials.username else None
        if ch.scheme != "bearer" or not ch.realm:
            return None
        scopes = merge_scopes(scopes)
        key = TokenCache.key(ch, scopes)
        token = self.tokens.get(key)
        if token is None or f"Bearer {token}" == stale:
            with self._token_lock:  # parallel transfers wait for one token instead of each fetching one
                token = self.tokens.get(key)
                if token is None or f"Bearer {token}" == stale:
                    token, expires_in = self._fetch_token(ch, scopes)
                    self.tokens.put(key, token, expires_in)
        return f"Bearer {token}"

    def _check_realm(self, realm: str) -> None:
        """A token realm that may receive our credentials: HTTPS; plain HTTP only for an allowed insecure
        registry, or a loopback realm of a registry we already reach over plain HTTP (no downgrade)."""
        parts = urlsplit(realm)
        scheme = parts.scheme.lower()
        if scheme == "https" and parts.hostname:
            return
        if scheme == "http" and parts.hostname and (
                self.tls.skips_verification(self.registry)
                or (self.base.startswith("http://") and is_loopback(parts.hostname))):
            return
        raise AuthError(f"{self.registry} sent its token server as {realm[:200]!r}: llmctl sends credentials only "
                        "to an https:// token server", hint=f"if {self.registry} is yours and trusted, list it in "
                                                            "LLMCTL_INSECURE_REGISTRIES")

    def owns(self, url: str) -> bool:
        """Whether `url` is on the registry's own origin (the only one that ever gets `Authorization`)."""
        return _origin(url) == _origin(self.base)

    def _fetch_token(self, ch: Challenge, scopes: tuple[str, ...]) -> tuple[str, float]:
        creds = self.credentials
        self._check_realm(ch.realm or "")
        params: list[tuple[str, str]] = []
        if ch.params.get("service"):
            params.append(("service", ch.params["service"]))
        params += [("scope", s) for s in scopes]
        realm = ch.realm or ""
        try:
            if creds and creds.identity_token:
                form = [("grant_type", "refresh_token"), ("refresh_token", creds.identity_token),
                        ("client_id", "llmctl"), *params]
                resp = self._http.send("POST", realm, body=urlencode(form).encode(),
                                       headers={"Content-Type": "application/x-www-form-urlencoded"})
            else:
                headers = {}
                if creds and creds.username:
                    params.append(("account", creds.username))
                    headers["Authorization"] = creds.basic_header()
                url = f"{realm}{'&' if '?' in realm else '?'}{urlencode(params)}" if params else realm
                resp = self._http.send("GET", url, headers=headers)
            with resp:
                resp.read(4 * 1024 * 1024)  # kept on the response for .json()
        except TransportError as exc:
            raise RegistryError(f"cannot reach the token server of {self.registry} ({ch.realm}): "
                                f"{errors.reason(exc)}") from None
        if resp.status_code in (401, 403):
            if creds:
                raise AuthError(f"{self.registry} refused the credentials of {creds.username or 'this login'}",
                                hint=f"check them and run `llmctl login {self.registry}` again")
            raise AuthError(f"{self.registry} requires authentication", hint=f"run `llmctl login {self.registry}`")
        if resp.status_code >= 400:
            raise RegistryError(f"the token server of {self.registry} answered {resp.status_code}")
        try:
            return token_from_response(resp.json())
        except ValueError:
            raise AuthError(f"the token server of {self.registry} answered something that is not JSON") from None

    def check_credentials(self) -> bool:
        """What `docker login` does: prove the credentials work. Returns False when the registry asks for
        none. Raises AuthError when they are refused."""
        _ = self.base
        ch = self._challenge
        if ch is None:
            return False
        if ch.scheme == "bearer":
            self._fetch_token(ch, ())  # the token server checks the password; no scope needed
            return True
        resp = self.request("GET", "/v2/")
        resp.close()
        if resp.status_code == 401:
            raise AuthError(f"{self.registry} refused the username or password")
        if resp.status_code >= 400:
            raise self.error(resp, "/v2/")
        return True

    # -- requests ------------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base}{path}"

    def request(
        self,
        method: str,
        path: str,
        *,
        scopes: tuple[str, ...] = (),
        headers: dict[str, str] | None = None,
        body: Body = None,
        stream: bool = False,
        follow_redirects: bool = False,
        retry: bool = True,
        raw_errors: bool = False,
    ) -> Response:
        """Send with auth and retries. Returns any final response; callers map statuses with `error()`.

        Without `stream` the body (a small JSON answer at most) is read and the connection freed; with it
        the caller reads the body and must `close()` the response.

        A 401 with a cached token renews it once (the token expired or was revoked early); a 401 after
        that is returned to the caller, which reports it as an AuthError. Connection failures that outlast
        the retries become RegistryError, unless `raw_errors` (transfers that resume or restart themselves).
        """
        try:
            return self._request(method, path, scopes=scopes, headers=headers, body=body, stream=stream,
                                 follow_redirects=follow_redirects, retry=retry)
        except TransportError as exc:
            if raw_errors:
                raise
            raise self.transport_error(exc) from None

    def _request(self, method: str, path: str, *, scopes: tuple[str, ...], headers: dict[str, str] | None,
                 body: Body, stream: bool, follow_redirects: bool, retry: bool) -> Response:
        url = self.url(path)
        if not self.owns(url):  # an upload Location elsewhere: no credentials, and no challenge to follow
            return self._send_retrying(method, url, headers=dict(headers or {}), body=body, stream=stream,
                                       follow_redirects=follow_redirects, attempts=None if retry else 1)
        renewed = False
        auth: str | None = None
        while True:
            h = dict(headers or {})
            auth = self._auth_header(scopes, stale=auth if renewed else None)
            if auth:
                h["Authorization"] = auth
            resp = self._send_retrying(method, url, headers=h, body=body, stream=stream,
                                       follow_redirects=follow_redirects, attempts=None if retry else 1)
            if resp.status_code != 401 or renewed:
                return resp
            challenge = parse_challenge(resp.headers.get("WWW-Authenticate"))
            if challenge is None:
                return resp
            wanted = challenge.params.get("scope")
            if wanted:
                scopes = merge_scopes((*scopes, *wanted.split(" ")))  # a scope we did not think of
            if self._challenge is None or challenge.scheme != self._challenge.scheme:
                self._challenge = challenge  # /v2/ was open but this repository is not
            elif not (auth and challenge.scheme == "bearer"):
                return resp  # basic credentials refused, or none to offer: the caller says "login"
            resp.close()
            renewed = True

    def _send_retrying(
        self, method: str, url: str, *, headers: dict[str, str], body: Body, stream: bool,
        follow_redirects: bool = False, attempts: int | None = None,
    ) -> Response:
        """Retry connection failures, 429 and 5xx; `attempts=1` for requests that must not repeat
        (an upload whose body may have been half-consumed by the registry). A TLS handshake that fails and
        a host name that does not resolve fail at once: no retry changes them."""
        attempts = attempts or self.retry.attempts
        attempt = 0
        while True:
            try:
                resp = self._http.send(method, url, headers=headers, body=body, follow_redirects=follow_redirects)
                if not stream:
                    resp.read(4 * 1024 * 1024)  # kept on the response for error messages
                    resp.close()
            except TransportError as exc:
                if errors.is_tls_error(exc) or errors.is_unresolvable(exc) or attempt + 1 >= attempts:
                    raise
                self._sleep(self.retry.delay(attempt))
                attempt += 1
                continue
            if resp.status_code in RETRY_STATUS and attempt + 1 < attempts:
                retry_after = resp.headers.get("Retry-After")
                resp.close()
                self._sleep(self.retry.delay(attempt, retry_after))
                attempt += 1
                continue
            return resp

    def backoff(self, attempt: int) -> None:
        """Wait before retry number `attempt` (0-based) of a transfer that failed mid-stream."""
        self._sleep(self.retry.delay(attempt))

    # -- errors --------------------------------------------------------------------------------------
    def error(self, resp: Response, what: str) -> Exception:
        """A typed, one-line error for a response that is not what the caller needed."""
        return errors.response_error(self.registry, resp, what, has_credentials=bool(self.credentials),
                                     attempts=self.retry.attempts)

    def transport_error(self, exc: BaseException) -> RegistryError:
        return errors.transport_error(self.registry, exc)


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


__all__ = ["RegistryClient", "RetryPolicy", "USER_AGENT", "api_host"]
