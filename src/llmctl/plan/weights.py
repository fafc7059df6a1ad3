"""Where the engines of a plan get their weights, and how a rendered deployment delivers them.

A plan never writes a path of the machine that made it: the engine loads a Hugging Face id (`hf:`), a folder
that an init container exports from an OCI registry (`oci:`), or a folder on a PersistentVolumeClaim (`pvc:`).
This module is the pure part: the source, its parsing, and the paths the pods see. The API layer resolves
references and sizes; the renderers turn a `Weights` into volumes, init containers and engine arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmctl.errors import InvalidInput

KINDS = ("hf", "oci", "pvc")
MODES = ("init-container", "image-volume")
"""How `oci:` weights reach a pod: `llmctl export` in an init container into a volume (any cluster), or a
Kubernetes image volume (KEP-4639: `volumes[].image`, Kubernetes >= 1.33 with the ImageVolume feature gate,
on by default from 1.35, and a runtime that mounts OCI artifacts, such as CRI-O >= 1.33)."""

MODELS_DIR = "/models"
"""Where the weights volume is mounted in every pod; the engine loads a folder below it."""
ARTIFACT_DIR = "/models-artifact"
"""Image-volume mode: where the artifact itself is mounted (read-only, one file per layer)."""
HF_HOME = f"{MODELS_DIR}/hf-home"
"""`hf:` weights: the Hugging Face cache on the weights volume, so a restarted container does not download
again."""
STORE_DIR = f"{MODELS_DIR}/.llmctl"
"""`LLMCTL_HOME` of the init container: on the same volume as the exported folder, so `llmctl export` hard
links the blobs instead of copying them (the weights take their size once on the volume, not twice)."""

REGISTRY_AUTH_DIR = "/var/run/llmctl/registry"
"""Where the init container finds `config.json` of the `--pull-secret` (a kubernetes.io/dockerconfigjson
Secret, key `.dockerconfigjson`); DOCKER_CONFIG points llmctl there, as it does docker and skopeo."""
INIT_CONTAINER = "weights"

EXPORT_SCRIPT = (
    'test -d "$MODEL_DIR" && exit 0; '
    'exec flock "$MODEL_DIR.lock" sh -c \'test -d "$MODEL_DIR" || exec llmctl export "$MODEL_REF" "$MODEL_DIR"\''
)
"""The init container's command: export unless the folder is there. `llmctl export` renames a complete
folder into place, so an existing folder is a whole model (a restarted pod or a shared PVC skips the copy);
flock serialises pods that share a PVC."""

_HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_PVC_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # a DNS-1123 label, as claim names are
_PVC_PATH = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
DEFAULT_INIT_IMAGE_REPO = "ghcr.io/llmctl/llmctl-init"
"""The init container image, built from images/llmctl-init/ (`--init-image` overrides)."""


@dataclass(frozen=True)
class Weights:
    """One model's weights as the pods find them.

    `ref`: the Hugging Face id, the OCI reference (pinned by digest where the API could resolve it), or the
    claim name. `path`: for `pvc:`, the folder inside the claim. `size_bytes`: the bytes a pod stores (sizes
    the emptyDir and the start-up probe), 0 when unknown. `gated`: a Hugging Face model whose download needs
    a token, so the token Secret is required rather than optional. `name`: a short name for the folder.
    `unpacked_bytes`: for `oci:`, the bytes of its tar layers (modctl's default keeps even the weights in
    tars), which an image volume's link step unpacks into the folder rather than linking.
    """

    kind: str
    ref: str
    path: str = ""
    size_bytes: int = 0
    gated: bool = False
    name: str = ""
    unpacked_bytes: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidInput(f"unknown weights source {self.kind!r}", hint="hf:ID, oci:REF or pvc:NAME/PATH")

    def __str__(self) -> str:
        return f"{self.kind}:{self.ref}" + (f"/{self.path}" if self.path else "")

    @property
    def folder(self) -> str:
        """The folder the engine loads, as the pods see it (for `hf:`, the id the engine downloads)."""
        if self.kind == "hf":
            return self.ref
        if self.kind == "pvc":
            return f"{MODELS_DIR}/{self.path}" if self.path else MODELS_DIR
        return f"{MODELS_DIR}/{self.dir_name}"

    @property
    def dir_name(self) -> str:
        """`oci:` folder name: the repository's last component and tag, plus the digest's first 12 hex digits
        when pinned, so two versions never share a folder on a shared PVC."""
        base = self.name or self.ref.split("@", 1)[0].rsplit("/", 1)[-1]
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.") or "model"
        if "@sha256:" in self.ref:
            slug += "-" + self.ref.split("@sha256:", 1)[1][:12]
        return slug


def parse_model_source(text: str) -> Weights:
    """`hf:ORG/NAME`, `oci:REF` or `pvc:CLAIM/PATH` (PATH optional); InvalidInput names the accepted forms.
    OCI references are checked and completed by the caller, which knows the configured default registry."""
    kind, sep, rest = text.strip().partition(":")
    rest = rest.strip()
    forms = "hf:ORG/NAME, oci:REGISTRY/REPO[:TAG|@DIGEST] or pvc:CLAIM[/PATH]"
    if not sep or kind not in KINDS or not rest:
        raise InvalidInput(f"--model-source {text!r} is not one of {forms}")
    if kind == "hf":
        if not _HF_ID.match(rest):
            raise InvalidInput(f"--model-source {text!r}: {rest!r} is not a Hugging Face id (ORG/NAME)")
        return Weights("hf", rest)
    if kind == "pvc":
        claim, _, path = rest.partition("/")
        path = path.strip("/")
        if not _PVC_NAME.match(claim) or len(claim) > 253:
            raise InvalidInput(f"--model-source {text!r}: {claim!r} is not a PersistentVolumeClaim name")
        if path and (not _PVC_PATH.match(path) or any(p in ("..", ".") for p in path.split("/"))):
            raise InvalidInput(f"--model-source {text!r}: {path!r} is not a relative path inside the claim")
        return Weights("pvc", claim, path=path)
    return Weights("oci", rest)


def default_init_image(version: str) -> str:
    return f"{DEFAULT_INIT_IMAGE_REPO}:{version}"
