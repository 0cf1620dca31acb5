"""The friendly endpoints' body: JSON `{"inputs": [...], "labels": [...]}` or multipart `files` (+ `labels`),
read within the input limits and parsed into a `PixelBatch`."""

from __future__ import annotations

import orjson
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

from service.body import ClientGone, check_rows, decode_body, read_body
from service.errors import BadRequest, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from service.preprocessing import PixelBatch
from service.routes.fields import decode_image, parse_label_field, parse_labels, parse_rows
from service.settings import Settings


async def _body(request: Request, limit: int) -> bytes:
    """The whole body, inflated if compressed (`service.body`, as for v2 infer); a client gone mid-body is
    starlette's ClientDisconnect here."""
    declared, encoding = request.headers.get("content-length"), request.headers.get("content-encoding")
    try:
        body = await read_body(request.receive, limit, None if declared is None else declared.encode("latin-1"))
    except ClientGone:
        raise ClientDisconnect from None
    return decode_body(body, None if encoding is None else encoding.encode("latin-1"), limit)


async def _form(request: Request, body: bytes, max_files: int) -> FormData:
    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        # One file over the limit gets through so that check_rows answers 413 with the limit.
        return await Request(request.scope, replay).form(max_files=max_files + 1, max_fields=16)
    except MultiPartException as exc:
        raise BadRequest(f"malformed multipart body: {exc.message}") from None
    except HTTPException as exc:
        if "Too many files" in exc.detail:
            raise PayloadTooLarge(f"{exc.detail} (max_request_rows)") from None
        raise BadRequest(f"malformed multipart body: {exc.detail}") from None


async def _files_batch(request: Request, body: bytes, max_rows: int, max_pixels: int) -> PixelBatch:
    form = await _form(request, body, max_rows)
    try:
        return await _decode_form(form, max_rows, max_pixels)
    finally:
        await form.close()


async def _decode_form(form: FormData, max_rows: int, max_pixels: int) -> PixelBatch:
    uploads = form.getlist("files")
    if not uploads:
        raise InvalidInput("the multipart body has no 'files': upload one or more PNG/JPEG images as 'files'")
    check_rows(len(uploads), max_rows)
    images = []
    budget = max_pixels  # decoded pixels left for this request: many small bombs add up
    for upload in uploads:
        if not isinstance(upload, UploadFile):
            raise InvalidInput("'files' must be file uploads (PNG or JPEG), not text fields")
        image = decode_image(upload.filename or "upload", await upload.read(), budget)
        budget -= image.width * image.height
        images.append(image)
    labels = form.get("labels")
    if labels is not None and not isinstance(labels, str):
        raise InvalidInput("'labels' must be a text field of comma-separated integers")
    return PixelBatch(images=images, labels=parse_label_field(labels or "", len(images)))


def _json_batch(body: bytes, max_rows: int) -> PixelBatch:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict) or "inputs" not in doc:
        raise BadRequest('the body must be a JSON object {"inputs": [row, ...], "labels": [int, ...]?}')
    unknown = set(doc) - {"inputs", "labels"}
    if unknown:
        raise BadRequest(f"unknown fields {sorted(unknown)}; expected 'inputs' and optionally 'labels'")
    rows = parse_rows(doc["inputs"])
    check_rows(len(rows), max_rows)
    return PixelBatch(rows=rows, labels=parse_labels(doc.get("labels"), len(rows)))


async def read_pixel_batch(request: Request, settings: Settings) -> PixelBatch:
    """A friendly body: JSON `{"inputs": [...], "labels": [...]}` or multipart `files` (+ `labels`)."""
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    multipart = content_type == "multipart/form-data"
    if not multipart and content_type not in ("application/json", "") and not content_type.endswith("+json"):
        raise UnsupportedMediaType(  # before reading the body
            f"content type {content_type!r} is not accepted; send application/json or multipart/form-data"
        )
    body = await _body(request, settings.max_body_bytes)
    if multipart:
        return await _files_batch(request, body, settings.max_request_rows, settings.max_image_pixels)
    return _json_batch(body, settings.max_request_rows)
