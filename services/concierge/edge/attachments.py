"""Customer uploads: checked against the agent's limits, read with MarkItDown, stored as text.

The text goes to the memory service and a system message tells the agent (and a human agent
watching) that the file is there; the agent's `read_attachment` tool fetches the text by id.
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from concierge.edge.backend import Backend, BackendDep, TenantDep, append_message, call, get_session
from concierge.edge.problems import Problem
from concierge.edge.schemas import AttachmentOut, message_frame, message_out
from concierge.memory.validation import MAX_CONTENT_TYPE_CHARS, MAX_FILENAME_CHARS
from concierge.retrieval.convert import convert
from concierge.retrieval.sources import (
    FORMAT_BY_EXTENSION,
    FORMAT_BY_MIMETYPE,
    DocumentProblem,
    DocumentRef,
    LoadedDocument,
)
from concierge.v1 import memory_pb2

log = logging.getLogger(__name__)

# Room for the multipart boundaries and part headers around the file itself.
MULTIPART_OVERHEAD = 64 * 1024
SUPPORTED = "PDF, DOCX, PPTX, XLSX, CSV, JSON, Markdown (.md), text (.txt) or HTML"
_TEXT_FORMATS = frozenset({"markdown", "text", "html", "csv", "json"})
_FORMAT_LABELS = {"markdown": "Markdown", "text": "text", "html": "HTML", "json": "JSON", "csv": "CSV"}
# Content types that say nothing about the file: its name decides.
_UNSPECIFIC = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary", "description": f"{SUPPORTED}."}},
                }
            }
        },
    }
}


@dataclass(frozen=True)
class Extracted:
    text: str
    chars: int
    truncated: bool
    pages: int | None


def safe_filename(name: str | None) -> str:
    """The file's own name, without folders or control characters, at most 255 characters (keeping its extension)."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = " ".join(_CONTROL.sub(" ", unicodedata.normalize("NFC", base)).split())
    if not base or base in (".", ".."):
        return "attachment"
    if len(base) > MAX_FILENAME_CHARS:
        suffix = PurePosixPath(base).suffix[:16]
        base = base[: MAX_FILENAME_CHARS - len(suffix)] + suffix
    return base


def attachment_format(filename: str, content_type: str | None) -> str | None:
    """The knowledge side's format name for an upload, by extension, else by content type; None: unsupported."""
    by_name = FORMAT_BY_EXTENSION.get(PurePosixPath(filename).suffix.lower())
    if by_name is not None:
        return by_name
    mimetype = (content_type or "").split(";", 1)[0].strip().lower()
    if mimetype in _UNSPECIFIC:
        return None
    if mimetype.endswith("+json"):
        return "json"
    return FORMAT_BY_MIMETYPE.get(mimetype)


def looks_binary(data: bytes) -> bool:
    """A NUL byte near the start: a program or image renamed to a text format, not text."""
    return b"\x00" in data[:8192]


def extract(data: bytes, filename: str, fmt: str, max_chars: int) -> Extracted:
    """Text of the upload (MarkItDown via the knowledge side's converter), cut to `max_chars`.

    Blocking and CPU-bound: run it in a worker thread. Raises DocumentProblem when the file cannot be read.
    """
    ref = DocumentRef(source="attachment", key=filename, uri=filename, name=filename, format=fmt)
    markdown = convert(LoadedDocument(ref=ref, data=data, format=fmt)).markdown
    # The converter separates PDF pages with form feeds (trailing empty pages are stripped).
    pages = markdown.count("\x0c") + 1 if fmt == "pdf" else None
    return Extracted(text=markdown[:max_chars], chars=len(markdown), truncated=len(markdown) > max_chars, pages=pages)


def attachment_note(filename: str, attachment_id: str, fmt: str, extracted: Extracted) -> str:
    """The system message the agent reads in its history, naming the id its `read_attachment` tool takes."""
    parts = [_FORMAT_LABELS.get(fmt, fmt.upper())]
    if extracted.pages is not None:
        parts.append(f"{extracted.pages} page{'s' if extracted.pages != 1 else ''}")
    parts.append(f"{extracted.chars:,} characters of text")
    if extracted.truncated:
        parts.append(f"only the first {len(extracted.text):,} are kept")
    return f'Customer attached "{filename}" (attachment {attachment_id}, {", ".join(parts)}).'


def problem_of(err: DocumentProblem, filename: str, fmt: str) -> Problem:
    """A file that is not what its name says is unsupported (415); one that is but cannot be read, 422."""
    detail = str(err)
    if detail.startswith("not a valid "):
        return Problem(415, "Unsupported file", f"{filename}: {detail}; attach a {SUPPORTED} file", format=fmt)
    return Problem(422, "Unreadable file", f"{filename}: {detail}", format=fmt)


def too_large(size: int | None, limit: int, agent: str) -> Problem:
    said = f"{size:,} bytes" if size is not None else "larger"
    return Problem(
        413,
        "File too large",
        f"the file is {said}; SupportAgent {agent!r} accepts files of at most {limit:,} bytes "
        f"({limit / (1024 * 1024):.1f} MiB): attach a smaller file or only the relevant pages",
        maxBytes=limit,
    )


async def _capped(stream: AsyncIterator[bytes], limit: int, problem: Problem) -> AsyncGenerator[bytes, None]:
    """The request body, refused with `problem` once it grows past `limit` (no Content-Length needed)."""
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            raise problem
        yield chunk


async def read_upload(request: Request, limit: int, agent: str) -> tuple[str, str, bytes]:
    """The uploaded file's name, content type and bytes, read no further than the limit allows."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise Problem(
            415,
            "Multipart form expected",
            "send the file as multipart/form-data in a part named `file` "
            f"(the request was {content_type or 'untyped'!r})",
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
        raise too_large(None, limit, agent)
    parser = MultiPartParser(
        request.headers,
        _capped(request.stream(), limit + MULTIPART_OVERHEAD, too_large(None, limit, agent)),
        max_files=1,
        max_fields=10,
    )
    try:
        form = await parser.parse()
    except MultiPartException as err:
        raise Problem(400, "Invalid multipart form", f"{err}; send one file in a part named `file`") from err
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Problem(
                422, "File missing", "the form has no file part named `file`", errors=[{"field": "body.file"}]
            )
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise too_large(upload.size, limit, agent)
        return safe_filename(upload.filename), upload.content_type or "", data
    finally:
        await form.close()


router = APIRouter(prefix="/api/v1", tags=["attachments"])


@router.post(
    "/sessions/{session_id}/attachments",
    status_code=201,
    response_model=AttachmentOut,
    response_model_by_alias=True,
    openapi_extra=_UPLOAD_BODY,
)
async def upload_attachment(session_id: str, request: Request, b: BackendDep, tenant: TenantDep) -> AttachmentOut:
    """Attach a file (multipart part `file`) to the conversation: its text is extracted and the agent
    can read it. 403 when the agent accepts no files, 413 over its size limit, 415 for a format the
    knowledge side cannot read, 422 when the file holds no text (e.g. a scanned image)."""
    session = await get_session(b, tenant, session_id)
    route = b.route(tenant, session.agent)
    if not route.attachments_enabled:
        raise Problem(
            403,
            "Attachments disabled",
            f"SupportAgent {route.name!r} does not accept files (its spec.attachments.enabled is false); "
            "paste the relevant text into a message instead",
        )
    limit = route.attachments_max_bytes
    filename, content_type, data = await read_upload(request, limit, route.name)
    if not data:
        raise Problem(422, "Empty file", f"{filename} is empty (0 bytes)")
    fmt = attachment_format(filename, content_type)
    if fmt is None:
        raise Problem(
            415,
            "Unsupported file type",
            f"{filename} ({content_type or 'no content type'}) cannot be read; attach a {SUPPORTED} file",
        )
    if fmt in _TEXT_FORMATS and looks_binary(data):
        raise Problem(
            415,
            "Unsupported file",
            f"{filename} is a binary file, not {_FORMAT_LABELS[fmt]}; attach a {SUPPORTED} file",
        )
    async with b.conversions:
        try:
            extracted = await asyncio.to_thread(extract, data, filename, fmt, b.settings.attachment_max_chars)
        except DocumentProblem as err:
            raise problem_of(err, filename, fmt) from err
    stored = await _store(b, tenant, session_id, filename, content_type, fmt, len(data), extracted)
    attachment, note = stored
    log.info(
        "attachment stored tenant=%s session=%s attachment=%s format=%s bytes=%d chars=%d truncated=%s",
        tenant,
        session_id,
        attachment.id,
        fmt,
        len(data),
        extracted.chars,
        extracted.truncated,
    )
    return AttachmentOut(
        id=attachment.id,
        session_id=attachment.session_id,
        filename=attachment.filename,
        content_type=attachment.content_type,
        size_bytes=attachment.size_bytes,
        format=fmt,
        chars=extracted.chars,
        pages=extracted.pages,
        truncated=attachment.truncated,
        created_at=attachment.created_at,
        message=message_out(note),
    )


async def _store(
    b: Backend,
    tenant: str,
    session_id: str,
    filename: str,
    content_type: str,
    fmt: str,
    size: int,
    extracted: Extracted,
) -> tuple[memory_pb2.Attachment, memory_pb2.Message]:
    reply = await call(
        "memory service",
        b.memory(tenant).AddAttachment(
            memory_pb2.AddAttachmentRequest(
                tenant=tenant,
                session_id=session_id,
                filename=filename,
                content_type=(content_type or _default_type(fmt))[:MAX_CONTENT_TYPE_CHARS],
                size_bytes=size,
                text=extracted.text,
                truncated=extracted.truncated,
            ),
            timeout=b.settings.rpc_timeout_seconds,
        ),
    )
    attachment: memory_pb2.Attachment = reply.attachment
    note, created = await append_message(
        b,
        tenant,
        memory_pb2.AppendMessageRequest(
            tenant=tenant,
            session_id=session_id,
            role=memory_pb2.ROLE_SYSTEM,
            text=attachment_note(filename, attachment.id, fmt, extracted),
            client_message_id=f"attachment:{attachment.id}",
        ),
    )
    if created:
        b.hub.publish(session_id, message_frame(note))
    return attachment, note


def _default_type(fmt: str) -> str:
    return next((mimetype for mimetype, f in FORMAT_BY_MIMETYPE.items() if f == fmt), "application/octet-stream")
