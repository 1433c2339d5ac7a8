"""uvicorn's Sans-I/O WebSocket protocol, made to let go of a client that stops reading.

uvicorn ends a connection with `transport.close()`, which first waits for the write buffer to
drain. A client that stopped reading never drains it, so its connection (an fd, and megabytes
of kernel send buffer) stayed open for minutes after the app had given up on it, and so would
a server shutting down. A close frame also waited, like any send, for the buffer to fall below
its high-water mark, so an app could not even queue its close (1008, slow consumer).

Here a close frame is queued behind the unsent data at once (a client that reads again gets it
after its data, then the close handshake runs as usual), and a connection still open
RESET_AFTER_SECONDS after uvicorn closed it is reset: its unsent data is dropped and the
kernel frees the socket at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from typing import Any, cast

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

# Once uvicorn closes a connection, how long it may take to hand over what it still has to send.
RESET_AFTER_SECONDS = 2.0
# SO_LINGER on with a zero timeout: closing sends a reset instead of lingering to send the rest.
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)


class _ClosingTransport:
    """The connection's transport, telling its protocol when it is asked to close."""

    def __init__(self, transport: asyncio.Transport, on_close: Callable[[], None]) -> None:
        self._transport = transport
        self._on_close = on_close

    def close(self) -> None:
        self._transport.close()
        self._on_close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class ResettingWebSocketProtocol(WebSocketsSansIOProtocol):
    _reset_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        closing = _ClosingTransport(cast(asyncio.Transport, transport), self._arm_reset)
        super().connection_made(cast(asyncio.Transport, closing))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._reset_timer is not None:
            self._reset_timer.cancel()
        super().connection_lost(exc)

    async def send(self, message: ASGISendEvent) -> None:
        paused = not self.writable.is_set()
        if message["type"] != "websocket.close" or not paused or not self.handshake_complete:
            await super().send(message)
            return
        # Waiting for room could take forever: the close frame goes behind the unsent data.
        self.writable.set()
        try:
            await super().send(message)  # with the event set, it runs without suspending
        finally:
            if not self.disconnected:
                self.writable.clear()  # still paused until the transport says otherwise

    def _arm_reset(self) -> None:
        if self._reset_timer is None and not self.disconnected:
            self._reset_timer = self.loop.call_later(RESET_AFTER_SECONDS, self._reset)

    def _reset(self) -> None:
        if self.disconnected:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        self.transport.abort()
