"""Media types llmctl writes and reads. The full format is documented in oci/README.md.

Docker Model Runner's (model-spec) types are primary. Modelfile parts that model-spec has no type for get
`application/vnd.llmctl.*` types whose payloads are byte-for-byte Ollama's, so Ollama artifacts map 1:1.
"""

from __future__ import annotations

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

# Docker Model Runner (docker/model-spec and what its code writes today)
MODEL_CONFIG_V01 = "application/vnd.docker.ai.model.config.v0.1+json"
MODEL_CONFIG_V02 = "application/vnd.docker.ai.model.config.v0.2+json"
GGUF = "application/vnd.docker.ai.gguf.v3"
GGUF_LORA = "application/vnd.docker.ai.gguf.v3.lora"
GGUF_MMPROJ = "application/vnd.docker.ai.gguf.v3.mmproj"
DMR_MMPROJ = "application/vnd.docker.ai.mmproj"
LICENSE = "application/vnd.docker.ai.license"
CHAT_TEMPLATE = "application/vnd.docker.ai.chat.template.jinja"
DMR_SAFETENSORS = "application/vnd.docker.ai.safetensors"
DMR_MODEL_FILE = "application/vnd.docker.ai.model.file"
# a tar of the config/tokenizer files of a safetensors model (`docker model package --safetensors-dir`)
DMR_CONFIG_ARCHIVE = "application/vnd.docker.ai.vllm.config.tar"
DMR_DIR_TAR = "application/vnd.docker.ai.dir.tar"  # a folder of the model, as a tar (`--dir-tar`)

# llmctl's own layers for Modelfile parts (payloads identical to Ollama's layers)
SYSTEM = "application/vnd.llmctl.system.v1"
TEMPLATE = "application/vnd.llmctl.template.v1"
PARAMS = "application/vnd.llmctl.params.v1+json"
MESSAGES = "application/vnd.llmctl.messages.v1+json"

# Ollama's registry format
OLLAMA_CONFIG = "application/vnd.docker.container.image.v1+json"
OLLAMA_MODEL = "application/vnd.ollama.image.model"
OLLAMA_ADAPTER = "application/vnd.ollama.image.adapter"
OLLAMA_PROJECTOR = "application/vnd.ollama.image.projector"
OLLAMA_SYSTEM = "application/vnd.ollama.image.system"
OLLAMA_TEMPLATE = "application/vnd.ollama.image.template"
OLLAMA_PARAMS = "application/vnd.ollama.image.params"
OLLAMA_MESSAGES = "application/vnd.ollama.image.messages"
OLLAMA_LICENSE = "application/vnd.ollama.image.license"

# CNCF ModelPack
CNCF_MANIFEST = "application/vnd.cncf.model.manifest.v1+json"
CNCF_CONFIG = "application/vnd.cncf.model.config.v1+json"
CNCF_WEIGHT_RAW = "application/vnd.cncf.model.weight.v1.raw"
CNCF_WEIGHT_GGUF = "application/vnd.cncf.model.weight.v1.gguf"
CNCF_WEIGHT_SAFETENSORS = "application/vnd.cncf.model.weight.v1.safetensors"
CNCF_WEIGHT_CONFIG = "application/vnd.cncf.model.weight.config.v1.raw"
CNCF_DOC = "application/vnd.cncf.model.doc.v1.raw"
CNCF_CODE = "application/vnd.cncf.model.code.v1.raw"
# modctl's default (without --raw): each layer a tar holding one file at its path in the model folder
CNCF_WEIGHT_TAR = "application/vnd.cncf.model.weight.v1.tar"
CNCF_WEIGHT_CONFIG_TAR = "application/vnd.cncf.model.weight.config.v1.tar"
CNCF_DOC_TAR = "application/vnd.cncf.model.doc.v1.tar"
CNCF_CODE_TAR = "application/vnd.cncf.model.code.v1.tar"

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_TITLE = "org.opencontainers.image.title"
ANNOTATION_FILEPATH = "org.cncf.model.filepath"
ANNOTATION_FILE_METADATA = "org.cncf.model.file.metadata+json"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST_V2)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)

# Layer roles: what a layer means to a model, whichever format wrote it.
ROLE_WEIGHTS = "weights"
ROLE_ADAPTER = "adapter"
ROLE_PROJECTOR = "projector"
ROLE_LICENSE = "license"
ROLE_CHAT_TEMPLATE = "chat_template"
ROLE_TEMPLATE = "template"
ROLE_SYSTEM = "system"
ROLE_PARAMS = "params"
ROLE_MESSAGES = "messages"
ROLE_FILE = "file"  # a file of the model folder (config.json, tokenizer...), at its path annotation
ROLE_ARCHIVE = "archive"  # a tar whose members are files of the model folder

LAYER_ROLES: dict[str, str] = {
    GGUF: ROLE_WEIGHTS,
    DMR_SAFETENSORS: ROLE_WEIGHTS,
    DMR_CONFIG_ARCHIVE: ROLE_ARCHIVE,
    DMR_DIR_TAR: ROLE_ARCHIVE,
    GGUF_LORA: ROLE_ADAPTER,
    GGUF_MMPROJ: ROLE_PROJECTOR,
    DMR_MMPROJ: ROLE_PROJECTOR,
    LICENSE: ROLE_LICENSE,
    CHAT_TEMPLATE: ROLE_CHAT_TEMPLATE,
    SYSTEM: ROLE_SYSTEM,
    TEMPLATE: ROLE_TEMPLATE,
    PARAMS: ROLE_PARAMS,
    MESSAGES: ROLE_MESSAGES,
    OLLAMA_MODEL: ROLE_WEIGHTS,
    OLLAMA_ADAPTER: ROLE_ADAPTER,
    OLLAMA_PROJECTOR: ROLE_PROJECTOR,
    OLLAMA_SYSTEM: ROLE_SYSTEM,
    OLLAMA_TEMPLATE: ROLE_TEMPLATE,
    OLLAMA_PARAMS: ROLE_PARAMS,
    OLLAMA_MESSAGES: ROLE_MESSAGES,
    OLLAMA_LICENSE: ROLE_LICENSE,
    CNCF_WEIGHT_GGUF: ROLE_WEIGHTS,
    CNCF_WEIGHT_SAFETENSORS: ROLE_WEIGHTS,
    CNCF_WEIGHT_CONFIG: ROLE_FILE,
    CNCF_CODE: ROLE_FILE,
    CNCF_WEIGHT_TAR: ROLE_ARCHIVE,
    CNCF_WEIGHT_CONFIG_TAR: ROLE_ARCHIVE,
    CNCF_DOC_TAR: ROLE_ARCHIVE,
    CNCF_CODE_TAR: ROLE_ARCHIVE,
}
"""Roles by media type alone. `artifact.model.layer_role` decides the generic types (DMR's model.file,
ModelPack's weight.v1.raw and doc.v1.raw) by their path annotation."""

# Weight formats: what a weights layer holds.
FORMAT_GGUF = "gguf"
FORMAT_SAFETENSORS = "safetensors"
WEIGHT_FORMATS: dict[str, str] = {
    GGUF: FORMAT_GGUF,
    OLLAMA_MODEL: FORMAT_GGUF,
    CNCF_WEIGHT_GGUF: FORMAT_GGUF,
    DMR_SAFETENSORS: FORMAT_SAFETENSORS,
    CNCF_WEIGHT_SAFETENSORS: FORMAT_SAFETENSORS,
}
