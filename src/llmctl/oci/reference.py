"""Model names: Docker's reference grammar, with defaults the way Docker and Ollama apply them.

`[registry[:port]/][namespace/]name[:tag][@sha256:digest]`. Short names are stored fully qualified
(`gemma3` -> `docker.io/library/gemma3:latest`, or under `LLMCTL_REGISTRY`) and shown short again.
The grammar is distribution/reference's (regexp.go): lowercase path components, 128-char tags, a domain
recognised by a dot, a port or `localhost`. Being strict here is what keeps names from escaping paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmctl.errors import InvalidReference
from llmctl.settings import DEFAULT_NAMESPACE, DEFAULT_REGISTRY

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
PATH_COMPONENT = re.compile(rf"^{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*$")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
DOMAIN = re.compile(rf"^{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$")
TAG = re.compile(r"^[\w][\w.-]{0,127}$")
# Hugging Face repo ids may have capitals (`hf.co/Org/Repo-GGUF`, Ollama's syntax): accepted there, and
# stored lowercased (the Hub resolves repo ids case-insensitively), so every spelling finds the same model.
HF_DOMAINS = ("hf.co", "huggingface.co")
HF_COMPONENT = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
MAX_NAME_LENGTH = 255
DEFAULT_TAG = "latest"


@dataclass(frozen=True, order=True)
class Reference:
    """A fully qualified model reference. `str()` gives the canonical long form and parses back."""

    registry: str
    repository: str
    tag: str | None = DEFAULT_TAG
    digest: str | None = None

    @property
    def name(self) -> str:
        """`registry/repository`, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def short(self, registry: str = DEFAULT_REGISTRY, namespace: str = DEFAULT_NAMESPACE) -> str:
        """The name as a user typed it: default registry and namespace dropped, as `docker images` shows."""
        repo = self.repository
        if self.registry == registry:
            if namespace and repo.startswith(namespace + "/"):
                repo = repo[len(namespace) + 1 :]
            out = repo
        else:
            out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def with_tag(self, tag: str) -> "Reference":
        return Reference(self.registry, self.repository, tag, None)

    def with_digest(self, digest: str) -> "Reference":
        return Reference(self.registry, self.repository, self.tag, digest)


def _is_domain(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost" or component != component.lower()


def parse(text: str, *, registry: str = DEFAULT_REGISTRY, namespace: str = DEFAULT_NAMESPACE) -> Reference:
    """Parse a model name, filling in the default registry, namespace and tag.

    Raises `InvalidReference` with a one-line reason for anything outside the grammar.
    """
    original = text
    if not isinstance(text, str) or not text.strip():
        raise InvalidReference("model name is empty")
    text = text.strip()
    if any(ch.isspace() for ch in text):
        raise InvalidReference(f"invalid model name {original!r}: contains whitespace")
    if text.startswith("/") or text.startswith("."):
        raise InvalidReference(f"invalid model name {original!r}: must not start with '/' or '.'")
    text, digest = _split_digest(text, original)
    name, tag = _split_tag(text, original)
    domain, path = _domain_and_path(name, original, registry, namespace)
    repository = "/".join(_checked_path(domain, path, original))
    if len(domain) + 1 + len(repository) > MAX_NAME_LENGTH:
        raise InvalidReference(f"invalid model name {original!r}: longer than {MAX_NAME_LENGTH} characters")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain, repository, tag, digest)


def _split_digest(text: str, original: str) -> tuple[str, str | None]:
    if "@" not in text:
        return text, None
    text, _, digest = text.partition("@")
    if not DIGEST.match(digest):
        raise InvalidReference(
            f"invalid digest {digest!r} in {original!r}: expected sha256: followed by 64 lowercase hex digits"
        )
    return text, digest


def _split_tag(name: str, original: str) -> tuple[str, str | None]:
    """NAME[:TAG]: a colon after the last slash starts the tag (one before it is a registry's port)."""
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon <= slash:
        return name, None
    name, tag = name[:colon], name[colon + 1 :]
    if not TAG.match(tag):
        why = "longer than 128 characters" if len(tag) > 128 else "allowed are letters, digits, '_', '.', '-'"
        raise InvalidReference(f"invalid tag {tag!r} in {original!r}: {why}")
    return name, tag


def _domain_and_path(name: str, original: str, registry: str, namespace: str) -> tuple[str, list[str]]:
    """The registry (the first component when it looks like a host, else the default) and the path under it."""
    parts = name.split("/")
    if any(p == "" for p in parts):
        raise InvalidReference(f"invalid model name {original!r}: empty path component")
    if len(parts) > 1 and _is_domain(parts[0]):
        domain, path = parts[0], parts[1:]
        if not DOMAIN.match(domain):
            raise InvalidReference(f"invalid registry {domain!r} in {original!r}")
        domain = domain.lower()
        return ("docker.io" if domain == "index.docker.io" else domain), path
    if namespace and len(parts) == 1:
        return registry, [*namespace.split("/"), *parts]
    return registry, parts


def _checked_path(domain: str, path: list[str], original: str) -> list[str]:
    """The repository's components, each in distribution's grammar (Hugging Face names lower-cased first)."""
    for component in path:
        if component in (".", ".."):
            raise InvalidReference(f"invalid model name {original!r}: '{component}' is not allowed")
    if domain in HF_DOMAINS and all(HF_COMPONENT.match(c) and ".." not in c for c in path):
        path = [c.lower() for c in path]
    for component in path:
        if component != component.lower():
            raise InvalidReference(f"invalid model name {original!r}: repository names must be lowercase")
        if not PATH_COMPONENT.match(component):
            raise InvalidReference(
                f"invalid model name {original!r}: {component!r} must be lowercase letters and digits, "
                "separated by '.', '_', '__' or '-'"
            )
    return path


def validate_tag(tag: str) -> str:
    if not TAG.match(tag):
        raise InvalidReference(f"invalid tag {tag!r}: letters, digits, '_', '.', '-', at most 128 characters")
    return tag
