"""Reading a request body safely: size limits (after gzip decompression, so a zip bomb is
refused), content type and encoding, and JSON parsing with precise errors."""

import zlib

import orjson
from fastapi import HTTPException, Request, status

from kizashi.ingest.limits import MAX_BODY_BYTES


def _too_large(limit: int) -> HTTPException:
    return HTTPException(
        status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        detail=f"request body is larger than {limit} bytes",
    )


async def read_limited(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    content_type = request.headers.get("content-type", "application/json").lower()
    media_type = content_type.split(";")[0].strip()
    if media_type not in ("application/json", "text/plain", ""):
        # Segment's SDKs send application/json; text/plain is what sendBeacon can send.
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"content type {media_type!r} is not supported; send application/json",
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    encoding = request.headers.get("content-encoding", "identity").lower().strip()
    if encoding not in ("identity", "gzip"):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"content encoding {encoding!r} is not supported; use gzip or none",
        )
    decompressor = zlib.decompressobj(wbits=31) if encoding == "gzip" else None
    chunks: list[bytes] = []
    size = raw_size = 0
    async for chunk in request.stream():
        # Counted before decompression too: bytes past the end of a gzip stream, or endless
        # empty deflate blocks, would otherwise pile up without growing the decompressed size.
        raw_size += len(chunk)
        if raw_size > limit:
            raise _too_large(limit)
        if decompressor is not None:
            if decompressor.eof and chunk:
                raise HTTPException(
                    status.HTTP_400_BAD_REQUEST, detail="data after the end of the gzip stream"
                )
            try:
                chunk = decompressor.decompress(chunk, limit + 1 - size)
            except zlib.error as error:
                raise HTTPException(
                    status.HTTP_400_BAD_REQUEST, detail=f"body is not valid gzip: {error}"
                ) from error
            if decompressor.unconsumed_tail:
                raise _too_large(limit)
            if decompressor.unused_data:
                raise HTTPException(
                    status.HTTP_400_BAD_REQUEST, detail="data after the end of the gzip stream"
                )
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    if decompressor is not None and not decompressor.eof:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="gzip body is truncated")
    return b"".join(chunks)


def parse_json(body: bytes) -> object:
    if not body.strip():
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="request body is empty")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"body is not valid UTF-8 (byte {error.start})",
        ) from error
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail=f"malformed JSON: {error}"
        ) from error
