"""Auth against the real docker-registry: htpasswd basic auth and the bearer-token flow (with the token
server from fixtures_registry), login/logout through Docker's config.json shared with skopeo, token caching
per scope and renewal on 401."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from fixtures_registry import PASSWORD, USER, RegistryServer
from llmctl.api.login import login, normalize_registry
from llmctl.api.package import PackageSpec, package
from llmctl.api.pull import pull
from llmctl.api.push import push
from llmctl.errors import AuthError
from llmctl.oci.registry.auth import (
    Credentials,
    DockerConfig,
    TokenCache,
    merge_scopes,
    parse_challenge,
    repo_scope,
)
from llmctl.settings import Settings


# -- pure parts -----------------------------------------------------------------------------------------
def test_challenges_parse_like_the_spec() -> None:
    ch = parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                         'scope="repository:library/x:pull,push",error="insufficient_scope"')
    assert ch.scheme == "bearer" and ch.realm == "https://auth.docker.io/token"
    assert ch.params["scope"] == "repository:library/x:pull,push" and ch.params["service"] == "registry.docker.io"
    assert parse_challenge('Basic realm="Registry Realm"').scheme == "basic"
    assert parse_challenge(None) is None
    assert repo_scope("team/m", "pull", "push") == "repository:team/m:pull,push"
    # the registry's `push,pull` and our `pull,push` are one scope, so they share one cached token
    assert merge_scopes(["repository:a:push,pull", "repository:a:pull", "repository:b:pull"]) == (
        "repository:a:pull,push", "repository:b:pull")


def test_token_cache_is_per_scope_and_expires() -> None:
    cache = TokenCache()
    ch = parse_challenge('Bearer realm="r",service="s"')
    a, b = TokenCache.key(ch, ("repository:a:pull",)), TokenCache.key(ch, ("repository:b:pull",))
    cache.put(a, "ta", 300)
    cache.put(b, "tb", 0)  # expired on arrival: fetched again before use
    assert cache.get(a) == "ta" and cache.get(TokenCache.key(ch, ("repository:a:pull",))) == "ta"
    assert cache.get(b) is None
    cache.drop(a)
    assert cache.get(a) is None


def test_docker_config_reads_docker_entries_and_keeps_other_keys(tmp_path: Path) -> None:
    cfg = DockerConfig(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({
        "auths": {
            "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hubuser:hubpass").decode()},
            "http://reg.example:5000": {"auth": base64.b64encode(b"u:p:with:colons").decode()},
            "tok.example": {"identitytoken": "refresh-123"},
        },
        "psFormat": "table {{.ID}}",
    }))
    assert cfg.get("docker.io") == Credentials("hubuser", "hubpass")
    assert cfg.get("reg.example:5000") == Credentials("u", "p:with:colons")
    assert cfg.get("tok.example").identity_token == "refresh-123"
    assert cfg.get("other.example") is None
    cfg.store("reg.example:5000", Credentials("new", "secret"))
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["psFormat"] == "table {{.ID}}" and "http://reg.example:5000" not in data["auths"]
    assert data["auths"]["reg.example:5000"] == {"auth": base64.b64encode(b"new:secret").decode()}
    assert stat.S_IMODE((tmp_path / "config.json").stat().st_mode) == 0o600
    assert cfg.erase("reg.example:5000") and not cfg.erase("reg.example:5000")
    assert normalize_registry("https://Reg.Example:5000/v2/") == "reg.example:5000"
    assert normalize_registry("index.docker.io") == "docker.io"


def test_credential_helper_is_used_when_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real `docker-credential-*` program on PATH (a shell script keeping one secret in a file)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    store = tmp_path / "helper-store.json"
    helper = bin_dir / "docker-credential-llmctltest"
    helper.write_text(f"""#!/bin/sh
case "$1" in
  get) cat "{store}" 2>/dev/null || {{ echo "credentials not found" >&2; exit 1; }} ;;
  store) cat > "{store}" ;;
  erase) rm -f "{store}" ;;
esac
""")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    cfg = DockerConfig(tmp_path / "docker")
    cfg.write({"credHelpers": {"reg.example:5000": "llmctltest"}})
    assert cfg.store("reg.example:5000", Credentials("helper-user", "helper-pass")) == "docker-credential-llmctltest"
    assert json.loads(store.read_text())["Username"] == "helper-user"
    assert cfg.get("reg.example:5000") == Credentials("helper-user", "helper-pass")
    assert "auths" not in json.loads(cfg.path.read_text())
    assert cfg.erase("reg.example:5000") and cfg.get("reg.example:5000") is None


# -- basic auth -----------------------------------------------------------------------------------------
def test_basic_auth_login_push_pull_logout(registry_basic: RegistryServer, docker_config: Path, cli,
                                           small_gguf: Path, tmp_path: Path) -> None:
    name = f"{registry_basic.host}/private/tiny:v1"
    r = cli("package", "--gguf", str(small_gguf), "--push", name)
    assert r.code == 7 and "llmctl login" in r.stderr and "Traceback" not in r.stderr

    r = cli("login", registry_basic.host, "-u", USER, "--password-stdin", input="wrong-password\n")
    assert r.code == 7 and "refused" in r.stderr
    assert not (docker_config / "config.json").exists()

    r = cli("login", registry_basic.host, "-u", USER, "--password-stdin", input=PASSWORD + "\n")
    assert r.code == 0, r.stderr
    entry = json.loads((docker_config / "config.json").read_text())["auths"][registry_basic.host]
    assert base64.b64decode(entry["auth"]).decode() == f"{USER}:{PASSWORD}"

    r = cli("push", name, "--quiet")
    assert r.code == 0, r.stderr
    # skopeo reads the same file
    sk = subprocess.run([shutil.which("skopeo") or "skopeo", "inspect", "--raw", "--tls-verify=false",
                         "--authfile", str(docker_config / "config.json"), f"docker://{name}"],
                        capture_output=True, text=True, timeout=60)
    assert sk.returncode == 0, sk.stderr

    r = cli("logout", registry_basic.host)
    assert r.code == 0 and registry_basic.host not in json.loads((docker_config / "config.json").read_text())["auths"]
    r = cli("pull", name, env={"LLMCTL_HOME": str(tmp_path / "other-home")})
    assert r.code == 7 and f"llmctl login {registry_basic.host}" in r.stderr


def test_skopeo_login_is_shared_with_llmctl(registry_basic: RegistryServer, docker_config: Path,
                                            settings: Settings, small_gguf: Path) -> None:
    sk = subprocess.run([shutil.which("skopeo") or "skopeo", "login", "--tls-verify=false", "--authfile",
                         str(docker_config / "config.json"), "-u", USER, "--password-stdin", registry_basic.host],
                        input=PASSWORD, capture_output=True, text=True, timeout=60)
    assert sk.returncode == 0, sk.stderr
    name = f"{registry_basic.host}/private/tiny:v2"
    package(settings, name, PackageSpec(gguf=small_gguf))
    assert push(settings, name).uploaded > 0


# -- bearer tokens --------------------------------------------------------------------------------------
def test_token_flow_login_push_pull_with_cached_tokens(registry_token: RegistryServer, settings: Settings,
                                                       small_gguf: Path, tmp_path: Path) -> None:
    tokens = registry_token.token_server
    name = f"{registry_token.host}/team/tiny:v1"
    package(settings, name, PackageSpec(gguf=small_gguf))
    with pytest.raises(AuthError, match="llmctl login"):
        push(settings, name)  # anonymous callers get no push access
    with pytest.raises(AuthError):
        login(settings, registry_token.host, USER, "not-the-password")

    assert login(settings, registry_token.host, USER, PASSWORD).auth_required
    tokens.requests.clear()
    pushed = push(settings, name)
    assert pushed.uploaded > 0
    # one token per scope for the whole push (HEADs, uploads and the manifest share it), not one per request
    assert len(tokens.requests) == 1 and tokens.requests[0] == (USER, ("repository:team/tiny:pull,push",))

    tokens.requests.clear()
    other = Settings.from_env({"LLMCTL_HOME": str(tmp_path / "home2"), "DOCKER_CONFIG": str(settings.docker_config)})
    pulled = pull(other, name)
    assert pulled.digest == pushed.digest and len(tokens.requests) == 1


def test_anonymous_pull_of_public_repository(registry_token: RegistryServer, settings: Settings, small_gguf: Path,
                                             tmp_path: Path) -> None:
    login(settings, registry_token.host, USER, PASSWORD)
    name = f"{registry_token.host}/public/tiny:v1"
    package(settings, name, PackageSpec(gguf=small_gguf))
    push(settings, name)
    anonymous = Settings.from_env({"LLMCTL_HOME": str(tmp_path / "anon"), "DOCKER_CONFIG": str(tmp_path / "empty")})
    assert pull(anonymous, name).downloaded > 0
    with pytest.raises(AuthError, match="llmctl login"):
        pull(anonymous, f"{registry_token.host}/team/secret:v1")


def test_token_renewed_on_401(registry_token: RegistryServer, settings: Settings, small_gguf: Path) -> None:
    """The first token is already expired though it claims 300 s: the registry answers 401 and the client
    fetches a fresh one once, instead of failing."""
    login(settings, registry_token.host, USER, PASSWORD)
    registry_token.token_server.requests.clear()
    registry_token.token_server.invalid_first = 1
    name = f"{registry_token.host}/team/renew:v1"
    package(settings, name, PackageSpec(gguf=small_gguf))
    assert push(settings, name).uploaded > 0
    assert len(registry_token.token_server.requests) == 2
