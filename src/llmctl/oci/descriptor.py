"""Descriptors and image manifests as plain dataclasses with exact JSON round trips."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from llmctl.errors import InvalidModel
from llmctl.oci import mediatypes as mt
from llmctl.oci.reference import DIGEST


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict, compare=False)
    artifact_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_json(cls, data: Any) -> "Descriptor":
        try:
            digest = data["digest"]
            size = int(data["size"])
            media_type = data.get("mediaType", "")
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidModel(f"malformed descriptor: {exc}") from None
        if not isinstance(digest, str) or not DIGEST.match(digest) or size < 0:
            raise InvalidModel(f"malformed descriptor: digest {digest!r}, size {size}")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            annotations=dict(data.get("annotations") or {}),
            artifact_type=data.get("artifactType"),
        )

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]


@dataclass(frozen=True)
class Manifest:
    """An OCI image manifest (or Docker v2 schema 2, which has the same shape)."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str = mt.OCI_MANIFEST
    annotations: dict[str, str] = field(default_factory=dict, compare=False)
    artifact_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schemaVersion": 2, "mediaType": self.media_type}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        out["config"] = self.config.to_json()
        out["layers"] = [layer.to_json() for layer in self.layers]
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    def to_bytes(self) -> bytes:
        """Canonical bytes: the digest of a manifest is the digest of exactly these."""
        return json.dumps(self.to_json(), indent=2).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Manifest":
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidModel(f"manifest is not JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("schemaVersion") != 2:
            raise InvalidModel("manifest is not an OCI image manifest (schemaVersion 2)")
        media_type = data.get("mediaType") or mt.OCI_MANIFEST
        if media_type in mt.INDEX_TYPES or "manifests" in data:
            raise InvalidModel("expected an image manifest, got an index")
        if "config" not in data:
            raise InvalidModel("manifest has no config")
        return cls(
            config=Descriptor.from_json(data["config"]),
            layers=tuple(Descriptor.from_json(layer) for layer in data.get("layers") or []),
            media_type=media_type,
            annotations=dict(data.get("annotations") or {}),
            artifact_type=data.get("artifactType"),
        )

    def blobs(self) -> list[Descriptor]:
        return [self.config, *self.layers]
