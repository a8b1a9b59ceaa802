"""File parts (OpenAI's ``file``, Anthropic's ``document``) as Converse ``document`` blocks.

Converse takes a document as ``{"format", "name", "source"}``: ``format`` one of nine
(pdf, csv, doc, docx, xls, xlsx, html, txt, md), ``source`` its base64 ``bytes`` or an
``s3Location``. The format comes from the data URL's media type, or from the file name's
extension when the media type says nothing (``application/octet-stream``); an ``s3://``
URL's from its extension. Bedrock fetches no other URL (nor does Parley for it) and cannot
read another provider's file ids: such parts, and media types outside the nine, are
``refused_parts``, which the gateway refuses with a 400 naming the part, or drops with
``drop_params``.

``name`` is required, and Bedrock is strict about it: 1 to 200 characters, only ASCII
letters and digits, single spaces, hyphens, parentheses and square brackets (a file
name's ``.`` and ``_`` are refused), and no two documents of one request may share one (a
conversation replays every earlier document). The name is the part's title, else its file
name without the extension (the format carries that), with every other character a space;
``document`` when nothing is left; a repeat gets " (2)", " (3)", ... in the order the
documents come, so the same conversation always gets the same names.
"""

from __future__ import annotations

import re
from typing import Any

from parley.errors import InvalidRequest
from parley.providers import convert
from parley.providers.base import RefusedPart
from parley.schema.chat import ChatRequest, FileData, FilePart, UserMessage

FORMATS = ("pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md")
_BY_MEDIA_TYPE = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
    "text/x-markdown": "md",
}
_BY_EXTENSION = {
    **{fmt: fmt for fmt in FORMATS},
    "htm": "html",
    "markdown": "md",
    "text": "txt",
}
_UNTYPED = frozenset({"application/octet-stream", "binary/octet-stream"})
"""Media types that say nothing about the document: its file name's extension decides."""
_NAME_LIMIT = 200
_NOT_IN_A_NAME = re.compile(r"[^A-Za-z0-9()\[\]-]+")
_FALLBACK_NAME = "document"


def _extension(name: str | None) -> str | None:
    if not name:
        return None
    last = name.rsplit("/", 1)[-1]  # a file name, or an s3:// key's last segment
    return last.rsplit(".", 1)[1].lower() if "." in last else None


def _format(media_type: str | None, filename: str | None) -> str:
    if media_type is not None and media_type.lower() not in _UNTYPED:
        found = _BY_MEDIA_TYPE.get(media_type.lower())
        if found is None:
            raise InvalidRequest(f"Bedrock takes {', '.join(FORMATS)} documents, not {media_type}")
        return found
    found = _BY_EXTENSION.get(_extension(filename) or "")
    if found is None:
        raise InvalidRequest(
            f"Bedrock takes {', '.join(FORMATS)} documents; neither the media type nor the "
            "file name says which this is"
        )
    return found


def document_source(file: FileData) -> tuple[str, dict[str, Any]]:
    """The document's Converse ``format`` and ``source``; ``InvalidRequest`` (no ``param``:
    the caller knows where the part is) for what Bedrock cannot take."""
    if file.file_data is not None:
        inline = convert.split_data_url(file.file_data)
        if inline is None:
            raise InvalidRequest("file_data must be a base64 data: URL (data:<type>;base64,...)")
        media_type, data = inline
        return _format(media_type, file.filename), {"bytes": data}  # base64 in JSON
    if file.url is not None:
        if file.url.startswith("s3://"):
            return _format(None, file.url), {"s3Location": {"uri": file.url}}
        raise InvalidRequest(
            "Bedrock takes documents as base64 data or s3:// locations; Parley does not "
            "fetch document URLs for it"
        )
    if file.file_id is not None:
        raise InvalidRequest("Bedrock cannot read a file by id; send the document inline")
    raise InvalidRequest("a file part needs file_data, url or file_id")


def refused_parts(request: ChatRequest) -> list[RefusedPart]:
    """The file parts Bedrock cannot take, each with the reason, in request order."""
    refused: list[RefusedPart] = []
    for index, message in enumerate(request.messages):
        if not isinstance(message, UserMessage) or isinstance(message.content, str):
            continue
        for position, part in enumerate(message.content):
            if not isinstance(part, FilePart):
                continue
            try:
                document_source(part.file)
            except InvalidRequest as exc:
                refused.append(RefusedPart(index, position, _described(exc.message, part)))
    return refused


def _described(reason: str, part: FilePart) -> str:
    named = part.title or part.file.filename
    return f"{reason} (document {named!r})" if named else reason


class DocumentNames:
    """Names for one request's documents: each valid for Bedrock, none repeated (compared
    without case, to be safe)."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def name_for(self, part: FilePart) -> str:
        if part.title:
            raw = part.title
        else:
            raw = part.file.filename or ""
            if _extension(raw) is not None:
                raw = raw.rsplit(".", 1)[0]
        stem = _clean(raw) or _FALLBACK_NAME
        name, count = stem, 1
        while name.lower() in self._taken:
            count += 1
            suffix = f" ({count})"
            name = _clean(stem[: _NAME_LIMIT - len(suffix)]) + suffix
        self._taken.add(name.lower())
        return name


def _clean(raw: str) -> str:
    """Only the characters Bedrock allows in a name, runs of others as one space."""
    return " ".join(_NOT_IN_A_NAME.sub(" ", raw).split())[:_NAME_LIMIT].strip()


def document_block(part: FilePart, names: DocumentNames, where: str) -> dict[str, Any]:
    """The ``document`` block for ``part`` (``where`` names it if it cannot be sent, which
    the gateway has normally refused or dropped already)."""
    try:
        document_format, source = document_source(part.file)
    except InvalidRequest as exc:
        raise InvalidRequest(exc.message, param=where) from None
    return {"format": document_format, "name": names.name_for(part), "source": source}
