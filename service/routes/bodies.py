"""The friendly endpoints' body: JSON `{"inputs": [...], "labels": [...]}` or multipart `files` (+ `labels`),
read within the input limits and parsed into a `PixelBatch`."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import simdjson
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

from modelrepo.card import Preprocessing
from service.body import ClientGone, check_rows, decode_body, read_body
from service.errors import BadRequest, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from service.images import ImageDecoder
from service.jsondoc import json_object
from service.preprocessing import PixelBatch
from service.routes.fields import parse_label_field, parse_labels, parse_rows
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
        if "Too many files" in exc.detail:  # starlette's message names the limit we gave it, one more than ours
            raise PayloadTooLarge(
                f"the request has more than {max_files} files; at most {max_files} per request (max_request_rows)"
            ) from None
        raise BadRequest(f"malformed multipart body: {exc.detail}") from None


async def _files_batch(request: Request, body: bytes, settings: Settings, images: Images) -> PixelBatch:
    form = await _form(request, body, settings.max_request_rows)
    try:
        return await _decode_form(form, settings, images)
    finally:
        await form.close()


async def _decode_form(form: FormData, settings: Settings, images: Images) -> PixelBatch:
    uploads = form.getlist("files")
    if not uploads:
        raise InvalidInput("the multipart body has no 'files': upload one or more PNG/JPEG images as 'files'")
    check_rows(len(uploads), settings.max_request_rows)
    labels = form.get("labels")
    if labels is not None and not isinstance(labels, str):
        raise InvalidInput("'labels' must be a text field of comma-separated integers")
    true_labels = parse_label_field(labels or "", len(uploads))
    limit = settings.max_image_pixels
    left = limit  # decoded pixels left for this request: many small bombs add up
    decoded = []
    for upload in uploads:
        if not isinstance(upload, UploadFile):
            raise InvalidInput("'files' must be file uploads (PNG or JPEG), not text fields")
        name = upload.filename or "upload"
        pixels, declared = await images.decoder.decode(name, await upload.read(), images.preps, left, limit)
        left -= declared
        decoded.append(pixels)
    stacked = {key: np.stack([d[key] for d in decoded]) for key in images.preps}  # (N, C, H, W) each
    return PixelBatch(decoded=stacked, labels=true_labels)


_SHAPE = '{"inputs": [row, ...], "labels": [int, ...]?}'


def _json_rows(inputs: Any, max_rows: int, row_size: int) -> np.ndarray:
    """The rows of `inputs`, counted before any Python object is made of them: a body of millions of numbers
    costs its parse, not their conversion."""
    if isinstance(inputs, simdjson.Array) and len(inputs) and isinstance(inputs[0], simdjson.Array):
        check_rows(len(inputs), max_rows)
        with contextlib.suppress(TypeError):  # not all numbers: parse_rows says so
            values = len(inputs.as_buffer(of_type="d")) // 8
            if values > len(inputs) * row_size:
                raise InvalidInput(
                    f"'inputs' holds {values} values for {len(inputs)} rows; a row holds {row_size} pixel values"
                )
    if isinstance(inputs, simdjson.Array):
        if len(inputs) and isinstance(inputs[0], int | float) and not isinstance(inputs[0], bool):
            raise InvalidInput("'inputs' must be a list of rows: wrap a single image in a list")
        inputs = inputs.as_list()
    return parse_rows(inputs)


def _json_batch(body: bytes, max_rows: int, row_size: int) -> PixelBatch:
    doc = json_object(body, f"the body {_SHAPE}")
    if "inputs" not in doc:
        raise BadRequest(f"the body must be a JSON object {_SHAPE}")
    unknown = set(doc) - {"inputs", "labels"}
    if unknown:
        raise BadRequest(f"unknown fields {sorted(unknown)}; expected 'inputs' and optionally 'labels'")
    rows = _json_rows(doc["inputs"], max_rows, row_size)
    check_rows(len(rows), max_rows)
    labels = doc.get("labels")
    if isinstance(labels, simdjson.Array):
        if len(labels) != len(rows):
            raise InvalidInput(f"'labels' has {len(labels)} entries for {len(rows)} rows; give one per row")
        labels = labels.as_list()
    return PixelBatch(rows=rows, labels=parse_labels(labels, len(rows)))


@dataclass(frozen=True)
class Images:
    """How a request's uploads are decoded: the decoder, and the preprocessings of the models it will run."""

    decoder: ImageDecoder
    preps: dict[str, Preprocessing]  # preprocessing key -> preprocessing


async def read_pixel_batch(request: Request, settings: Settings, images: Images) -> PixelBatch:
    """A friendly body: JSON `{"inputs": [...], "labels": [...]}` or multipart `files` (+ `labels`)."""
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    multipart = content_type == "multipart/form-data"
    if not multipart and content_type not in ("application/json", "") and not content_type.endswith("+json"):
        raise UnsupportedMediaType(  # before reading the body
            f"content type {content_type!r} is not accepted; send application/json or multipart/form-data"
        )
    body = await _body(request, settings.max_body_bytes)
    if multipart:
        return await _files_batch(request, body, settings, images)
    row_size = max(p.channels * p.height * p.width for p in images.preps.values())
    return _json_batch(body, settings.max_request_rows, row_size)
