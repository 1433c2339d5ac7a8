"""Reading a request body with a hard size limit, whether or not Content-Length is sent."""

from __future__ import annotations

from fastapi import Request
from starlette.requests import ClientDisconnect

from dexec_api.errors import ApiError

# nginx's status for a request its client gave up on before it was answered.
CLIENT_CLOSED_REQUEST = 499


async def read_json_body(request: Request, limit: int) -> bytes:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "send the order as application/json")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "BODY_TOO_LARGE", f"the body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "BODY_TOO_LARGE", f"the body is over {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect as exc:
        # Not an error of ours: counted as nginx counts it, and nobody reads the answer.
        raise ApiError(
            CLIENT_CLOSED_REQUEST,
            "CLIENT_CLOSED_REQUEST",
            "the client closed the connection before the whole body came",
        ) from exc
    return b"".join(chunks)
