"""Registry credentials and the two auth schemes of the distribution spec.

Credentials live where Docker keeps them, `$DOCKER_CONFIG/config.json` (`~/.docker/config.json`): `auths`
entries with a base64 `auth` ("user:password") or `identitytoken`, and `credHelpers`/`credsStore` naming a
`docker-credential-*` program. Reading and writing that file means `docker login`, `skopeo login` and
`oras login` sessions are shared with llmctl in both directions.

Schemes: `Basic` sends the credentials on every request; `Bearer` (Docker's token flow) trades them at the
realm for a token per scope, cached until it expires and renewed when the registry answers 401 anyway.
Everything here is pure except `DockerConfig` (one JSON file, written atomically with mode 0600) and the
credential-helper call.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from llmctl.errors import AuthError, InvalidInput

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str | None = None  # OAuth2 refresh token (`docker login` to some registries stores one)

    def basic_header(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def config_key(registry: str) -> str:
    """The `auths` key Docker writes for a registry (Docker Hub keeps its historical URL)."""
    return DOCKER_HUB_KEY if registry in DOCKER_HUB_ALIASES else registry


def _normalize(key: str) -> str:
    """`https://host:port/v1/` and `host:port` name the same registry in `auths`."""
    key = re.sub(r"^[a-z]+://", "", key.strip()).split("/", 1)[0].lower()
    return "docker.io" if key in DOCKER_HUB_ALIASES else key


class DockerConfig:
    """`config.json` in a Docker config directory; unknown keys are preserved on write."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / "config.json"

    def read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{self.path} is not valid JSON: {exc}") from None
        return data if isinstance(data, dict) else {}

    def write(self, data: dict) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".config.json.tmp-{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent="\t")
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def helper_for(self, registry: str) -> str | None:
        data = self.read()
        helpers = data.get("credHelpers") or {}
        for key, helper in helpers.items():
            if _normalize(key) == _normalize(registry):
                return str(helper)
        store = data.get("credsStore")
        return str(store) if store else None

    def get(self, registry: str) -> Credentials | None:
        """Credentials for a registry: its credential helper if one is configured and installed, else `auths`."""
        helper = self.helper_for(registry)
        if helper:
            creds = _helper_get(helper, config_key(registry))
            if creds is not None:
                return creds
        for key, entry in (self.read().get("auths") or {}).items():
            if _normalize(key) != _normalize(registry) or not isinstance(entry, dict):
                continue
            if entry.get("identitytoken"):
                return Credentials(entry.get("username") or "", "", identity_token=entry["identitytoken"])
            if entry.get("auth"):
                try:
                    user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    raise InvalidInput(f"{self.path}: the `auth` entry for {key} is not base64 user:password") from None
                return Credentials(user, password)
            if entry.get("username") and entry.get("password"):
                return Credentials(entry["username"], entry["password"])
        return None

    def store(self, registry: str, creds: Credentials) -> str:
        """Save credentials; returns where they went ("config.json" or the helper's name)."""
        helper = self.helper_for(registry)
        if helper and _helper_store(helper, config_key(registry), creds):
            return f"docker-credential-{helper}"
        data = self.read()
        auths = data.setdefault("auths", {})
        for key in [k for k in auths if _normalize(k) == _normalize(registry)]:
            del auths[key]
        auths[config_key(registry)] = {"auth": base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()}
        self.write(data)
        return str(self.path)

    def erase(self, registry: str) -> bool:
        """Forget a registry's credentials; True when there were some."""
        found = False
        helper = self.helper_for(registry)
        if helper and _helper_erase(helper, config_key(registry)):
            found = True
        data = self.read()
        auths = data.get("auths") or {}
        keys = [k for k in auths if _normalize(k) == _normalize(registry)]
        for key in keys:
            del auths[key]
        if keys:
            self.write(data)
        return found or bool(keys)


def _helper_run(helper: str, action: str, payload: str) -> str | None:
    import shutil  # with subprocess, 5-10 ms of imports that only credential helpers need
    import subprocess

    exe = shutil.which(f"docker-credential-{helper}")
    if exe is None:
        return None  # configured but not installed here: fall back to `auths`, as skopeo does
    proc = subprocess.run([exe, action], input=payload, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        return None
    return proc.stdout


def _helper_get(helper: str, server: str) -> Credentials | None:
    out = _helper_run(helper, "get", server)
    if not out:
        return None
    try:
        data = json.loads(out)
    except ValueError:
        return None
    if data.get("Username") == "<token>":
        return Credentials("", "", identity_token=data.get("Secret") or None)
    return Credentials(data.get("Username") or "", data.get("Secret") or "")


def _helper_store(helper: str, server: str, creds: Credentials) -> bool:
    payload = json.dumps({"ServerURL": server, "Username": creds.username, "Secret": creds.password})
    return _helper_run(helper, "store", payload) is not None


def _helper_erase(helper: str, server: str) -> bool:
    return _helper_run(helper, "erase", server) is not None


# -- challenges and tokens -------------------------------------------------------------------------------
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class Challenge:
    """A parsed `WWW-Authenticate` header: scheme plus parameters (realm, service, scope, error)."""

    scheme: str
    params: dict[str, str]

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")


def parse_challenge(header: str | None) -> Challenge | None:
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)


def repo_scope(repository: str, *actions: str) -> str:
    return f"repository:{repository}:{','.join(actions)}"


def merge_scopes(scopes: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """One canonical form per set of scopes: actions merged per resource, in a stable order, so that
    `repository:x:push,pull` from a challenge and our `repository:x:pull,push` share one cached token."""
    merged: dict[str, list[str]] = {}
    for scope in scopes:
        resource, _, actions = scope.rpartition(":")
        if not resource:
            merged.setdefault(scope, [])
            continue
        have = merged.setdefault(resource, [])
        for action in actions.split(","):
            if action and action not in have:
                have.append(action)
    order = {"pull": 0, "push": 1}
    return tuple(f"{r}:{','.join(sorted(a, key=lambda x: (order.get(x, 2), x)))}" if a else r
                 for r, a in merged.items())


@dataclass
class _Token:
    value: str
    expires_at: float


class TokenCache:
    """Bearer tokens per (realm, service, scopes). Thread-safe: parallel blob transfers share one cache."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, frozenset[str]], _Token] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(challenge: Challenge, scopes: tuple[str, ...]) -> tuple[str, str, frozenset[str]]:
        return (challenge.realm or "", challenge.params.get("service", ""), frozenset(scopes))

    def get(self, key: tuple[str, str, frozenset[str]]) -> str | None:
        with self._lock:
            token = self._tokens.get(key)
            if token is None or token.expires_at <= time.time():
                return None
            return token.value

    def put(self, key: tuple[str, str, frozenset[str]], value: str, expires_in: float) -> None:
        # Renew a little early so a token never expires between our check and the registry's.
        with self._lock:
            self._tokens[key] = _Token(value, time.time() + expires_in - min(10.0, expires_in * 0.2))

    def drop(self, key: tuple[str, str, frozenset[str]]) -> None:
        with self._lock:
            self._tokens.pop(key, None)


def token_from_response(data: object) -> tuple[str, float]:
    """`{"token"|"access_token": ..., "expires_in": s}` -> (token, seconds); the spec's default is 60 s."""
    if not isinstance(data, dict):
        raise AuthError("the registry's token server answered something that is not a token")
    token = data.get("token") or data.get("access_token")
    if not isinstance(token, str) or not token:
        raise AuthError("the registry's token server answered without a token")
    try:
        expires_in = float(data.get("expires_in") or 60)
    except (TypeError, ValueError):
        expires_in = 60.0
    return token, expires_in
