"""Ollama's create API: POST /api/create, and the blob upload it relies on (HEAD/POST /api/blobs/DIGEST).

A current Ollama client sends the model as JSON (`from` or `files`, `template`, `system`, `parameters`,
`messages`, `license`, `adapters`); older ones send a Modelfile's text in `modelfile`, with uploaded files
written as `@sha256:<hex>`. Both become a parsed Modelfile and go through `llmctl.api.create`, the same
call as `llmctl create`, so Ollama's semantics (layers of a FROM model reused, PARAMETERs merged key by key)
hold here too.

Local files are uploaded first (`POST /api/blobs/sha256:<hex>`, verified against the digest while it is
written, as the store writes every blob) and then named by digest. The gateway never reads a path a
client names: it may run on another machine, and a path would let any client read the server's files.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any, Mapping

from fastapi import APIRouter
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from llmctl.errors import InsufficientSpace, IntegrityError, InvalidInput, InvalidModelfile
from llmctl.server import errors, jobs, translate
from llmctl.server.errors import GatewayError
from llmctl.server.gateway import gateway_of, template_limits
from llmctl.server.routes.manage import name_of
from llmctl.settings import Settings

router = APIRouter()
JSON_FIELDS = ("from", "files", "adapters", "template", "system", "parameters", "messages", "license")
DIGEST = re.compile(r"^sha256[:-]([0-9a-f]{64})$")
WRITE_CHUNK = 4 * 1024 * 1024


@router.post("/api/create")
async def create(request: Request) -> Response:
    from llmctl.api.create import create as create_model

    gw = gateway_of(request)
    body = await gw.read_json(request)
    name = request.state.model = name_of(body)
    stream = translate.flag(body, "stream", True)
    if body.get("quantize"):
        raise GatewayError(400, "quantize is not supported by llmctl serve; quantize the GGUF with llama-quantize "
                                "and create the model from the result", param="quantize")
    modelfile, blobs_dir = await asyncio.to_thread(build_modelfile, gw.settings, name, body)
    legacy = body.get("modelfile") is not None

    def work(progress: jobs.QueueProgress) -> Any:
        try:
            return create_model(gw.settings, name, modelfile, base_dir=blobs_dir, progress=progress)
        except InvalidModelfile as exc:
            if legacy:
                raise
            raise InvalidInput(exc.reason) from None  # no "line N:" of a Modelfile the client never wrote

    return await jobs.respond(
        gw, request, "/api/create", name, work, verb="pulling", first=("gathering model components",),
        last=lambda _: ("writing manifest",),
        stream=stream)


def build_modelfile(settings: Settings, name: str, body: Mapping[str, Any]) -> tuple[Any, Path]:
    """The request as a checked Modelfile, and the folder its file references point into (the blobs).

    Raises a 400 for anything `llmctl create` would refuse later, so a bad request never starts a stream.
    """
    from llmctl.api.models import open_store, parse_name

    parse_name(settings, name)  # InvalidReference: a 400 before anything starts
    store = open_store(settings)
    text = body.get("modelfile")
    modelfile = _from_modelfile_text(store, body, text) if text is not None else _from_json_fields(store, body)
    _only_blobs(modelfile, store.blobs_dir)
    check_modelfile(settings, modelfile)
    return modelfile, store.blobs_dir


def _from_modelfile_text(store: Any, body: Mapping[str, Any], text: Any) -> Any:
    """An older client's `modelfile`: its text, with `@sha256:<hex>` FROM/ADAPTER files as uploaded blobs."""
    from llmctl.modelfile import Command, Modelfile, parse

    if not isinstance(text, str):
        raise GatewayError(400, "modelfile must be a string", param="modelfile")
    given = [k for k in JSON_FIELDS if body.get(k) not in (None, "", [], {})]
    if given:
        raise GatewayError(400, f"give either `modelfile` or the JSON fields ({', '.join(given)}), not both")
    parsed = parse(text)
    commands = [Command(c.name, str(_blob(store, c.args[1:], "FROM" if c.name == "model" else "ADAPTER"))
                        if c.name in ("model", "adapter") and c.args.startswith("@sha256:") else c.args, c.line)
                for c in parsed.commands]
    return Modelfile(commands)


def _from_json_fields(store: Any, body: Mapping[str, Any]) -> Any:
    """A current client's JSON fields, checked one by one (a 400 names the field), rendered and re-parsed as
    `ollama create` checks every PARAMETER."""
    from llmctl.modelfile import Message, parse, render_modelfile

    froms = _froms(store, body)
    adapters = [str(_blob(store, digest, f"adapters[{fname!r}]"))
                for fname, digest in _named_digests(body.get("adapters") or {}, "adapters")]
    license_ = body.get("license")
    licenses = [license_] if isinstance(license_, str) else license_ or []
    if not isinstance(licenses, list) or not all(isinstance(x, str) for x in licenses):
        raise GatewayError(400, "license must be a string or a list of strings", param="license")
    messages = body.get("messages") or []
    if not isinstance(messages, list) or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content", ""), str)
            for m in messages):
        raise GatewayError(400, "messages must be a list of {role, content} objects", param="messages")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise GatewayError(400, "parameters must be an object", param="parameters")
    for key in ("template", "system"):
        if body.get(key) is not None and not isinstance(body.get(key), str):
            raise GatewayError(400, f"{key} must be a string", param=key)
    text = render_modelfile(  # InvalidInput (a 400) for what no Modelfile can say
        froms=froms, template=body.get("template"), system=body.get("system"), parameters=parameters,
        messages=[Message(m["role"], m.get("content", "")) for m in messages], adapters=adapters,
        licenses=licenses)
    try:
        return parse(text)
    except InvalidModelfile as exc:
        raise GatewayError(400, exc.reason) from None


def _froms(store: Any, body: Mapping[str, Any]) -> list[str]:
    """`from` (a model name) or `files` (uploaded GGUF blobs by file name), never both."""
    base, files = body.get("from"), body.get("files")
    if base and files:
        raise GatewayError(400, "give either `from` (a model) or `files` (uploaded GGUF blobs), not both")
    if base:
        if not isinstance(base, str):
            raise GatewayError(400, "from must be a model name", param="from")
        return [base]
    if not files:
        raise GatewayError(400, "neither 'from' or 'files' was specified")
    froms = [str(_blob(store, digest, f"files[{fname!r}]")) for fname, digest in _named_digests(files, "files")]
    if any(not fname.endswith(".gguf") for fname in files):
        raise GatewayError(400, "only GGUF files can be imported (safetensors must be converted first)", param="files")
    return froms


def check_modelfile(settings: Settings, modelfile: Any) -> None:
    """What the gateway refuses to store although a Modelfile may say it: load-time PARAMETERs out of range,
    and a TEMPLATE that does not parse or breaks the render limits on a sample conversation (a bomb is a
    400 here, before it is stored, not a stalled gateway on the first chat)."""
    from llmctl.runtime import gotemplate
    from llmctl.runtime.params import check_load_params
    from llmctl.runtime.prompt import render_template

    try:
        check_load_params(modelfile.parameters, where="parameter ")
    except InvalidInput as exc:
        raise GatewayError(400, exc.message, param="parameters") from None
    if not modelfile.template:
        return
    limits = template_limits(settings)
    sample = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi!"},
              {"role": "user", "content": "How are you?"}]
    try:
        gotemplate.parse(modelfile.template, limits.max_depth)
    except InvalidInput as exc:
        raise GatewayError(400, f"template does not parse: {exc.message}", param="template") from None
    try:
        render_template(modelfile.template, system="You are helpful.", messages=sample, limits=limits)
    except gotemplate.TemplateLimitError as exc:
        raise GatewayError(400, f"template: {exc.message}", param="template") from None
    except InvalidInput:
        pass  # an error that depends on the conversation: the request that meets it gets its 400


def _named_digests(value: Any, field: str) -> list[tuple[str, str]]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise GatewayError(400, f"{field} must map file names to sha256 digests", param=field)
    return list(value.items())


def _blob(store: Any, digest: str, what: str) -> Path:
    m = DIGEST.match(digest)
    if not m:
        raise GatewayError(400, f"{what}: {digest!r} is not a sha256 digest")
    if not store.has_blob(f"sha256:{m.group(1)}"):
        raise GatewayError(400, f"{what}: blob sha256:{m.group(1)} is not on the server; upload it first with "
                                f"POST /api/blobs/sha256:{m.group(1)}")
    return store.blob_path(f"sha256:{m.group(1)}")


def _only_blobs(modelfile: Any, blobs_dir: Path) -> None:
    """Refuse FROM/ADAPTER paths outside the store's blobs: the gateway does not read the server's files."""
    from llmctl.api.create import looks_like_path, resolve_path

    args = [("FROM", a) for a in modelfile.froms() if looks_like_path(a, blobs_dir)]
    args += [("ADAPTER", a) for a in modelfile.adapters]
    for what, arg in args:
        path = resolve_path(arg, blobs_dir)
        if path.parent.resolve() != blobs_dir.resolve() or not DIGEST.match("sha256:" + path.name):
            raise GatewayError(400, f"{what} {arg}: llmctl serve does not read files by path; upload the file "
                                    f"(POST /api/blobs/sha256:<digest>) and name it by digest in `files` / `adapters`")


# -- blobs ----------------------------------------------------------------------------------------------------
def _digest_or_none(text: str) -> str | None:
    m = DIGEST.match(text)
    return f"sha256:{m.group(1)}" if m else None


@router.head("/api/blobs/{digest}")
async def head_blob(request: Request, digest: str) -> Response:
    """200 if the store has the blob (an upload can be skipped), 404 if not."""
    from llmctl.api.models import open_store

    gw = gateway_of(request)
    d = _digest_or_none(digest)
    if d is None:
        gw.finish("/api/blobs", "", 400, "client")
        return Response(status_code=400)
    found = await asyncio.to_thread(lambda: open_store(gw.settings).has_blob(d))
    gw.finish("/api/blobs", "", 200 if found else 404, None if found else "client")
    return Response(status_code=200 if found else 404)


@router.post("/api/blobs/{digest}")
async def create_blob(request: Request, digest: str) -> Response:
    """Stream the body into the store; it is kept only if its bytes hash to `digest` (201; 200 if present).

    Its size is checked before a byte is written: against LLMCTL_MAX_BLOB_SIZE (413) and the free disk less
    LLMCTL_DISK_RESERVE (507), from Content-Length; a body without one is checked as it arrives.
    """
    from llmctl.api.models import open_store
    from llmctl.api.pull import space_rule

    gw = gateway_of(request)
    d = _digest_or_none(digest)
    if d is None:
        gw.finish("/api/blobs", "", 400, "client")
        return errors.response(GatewayError(400, f"{digest!r} is not a sha256 digest (sha256:<64 hex>)"), False)
    store = await asyncio.to_thread(open_store, gw.settings)
    if store.has_blob(d):
        gw.finish("/api/blobs", "", 200)
        return Response(status_code=200)
    rule = space_rule(gw.settings)
    length = request.headers.get("content-length", "")
    try:
        _check_upload(rule, store, d, int(length) if length.isdigit() else 0)
    except (GatewayError, InsufficientSpace) as exc:
        return _blob_error(gw, exc)
    writer = await asyncio.to_thread(store.writer)
    try:
        await _receive_blob(request, writer, rule, store, d)
        await asyncio.to_thread(writer.commit, d)
    except ClientDisconnect:
        gw.finish("/api/blobs", "", jobs.CLIENT_CLOSED, "cancelled")
        return Response(status_code=jobs.CLIENT_CLOSED)
    except (GatewayError, InsufficientSpace) as exc:
        return _blob_error(gw, exc)
    except IntegrityError:
        gw.finish("/api/blobs", "", 400, "client")
        return errors.response(GatewayError(400, f"digest mismatch, expected {d!r}, got {writer.digest!r} "
                                                 f"({writer.size} bytes); nothing was stored"), False)
    finally:
        await asyncio.to_thread(writer.abort)
    gw.finish("/api/blobs", "", 201)
    return Response(status_code=201)


def _check_upload(rule: Any, store: Any, digest: str, size: int) -> None:
    """413 beyond LLMCTL_MAX_BLOB_SIZE; InsufficientSpace (507) when `size` more bytes would not fit."""
    if rule.max_blob and size > rule.max_blob:
        raise GatewayError(413, f"blob {digest} is larger than {rule.max_blob} bytes (LLMCTL_MAX_BLOB_SIZE); "
                                "nothing was stored")
    rule.check(store.ingest_dir, size, what=f"blob {digest}")


async def _receive_blob(request: Request, writer: Any, rule: Any, store: Any, digest: str) -> None:
    """The body into `writer`, in 4 MiB writes; the size rules are checked again at each one, so a body
    without Content-Length (or one that lies) stops where it would break them."""
    buf = bytearray()
    received = 0
    async for chunk in request.stream():
        buf += chunk
        received += len(chunk)
        if rule.max_blob and received > rule.max_blob:
            _check_upload(rule, store, digest, received)
        if len(buf) >= WRITE_CHUNK:
            await asyncio.to_thread(_check_and_write, rule, store, digest, writer, bytes(buf))
            buf.clear()
    if buf:
        await asyncio.to_thread(_check_and_write, rule, store, digest, writer, bytes(buf))


def _check_and_write(rule: Any, store: Any, digest: str, writer: Any, data: bytes) -> None:
    rule.check(store.ingest_dir, len(data), what=f"blob {digest}")
    writer.write(data)


def _blob_error(gw: Any, exc: Exception) -> Response:
    err = exc if isinstance(exc, GatewayError) else errors.from_llmctl(exc)  # type: ignore[arg-type]
    gw.finish("/api/blobs", "", err.status, "client" if err.status < 500 else "server")
    return errors.response(err, False)
