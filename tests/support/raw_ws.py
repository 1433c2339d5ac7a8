"""A WebSocket client on a bare socket that reads only when told to: a client that stops
reading, as a server sees one (a library client keeps reading into its own buffers).

The socket's receive buffer is tiny, so the server's sends back up after a few KiB; the
protocol is the `websockets` library's Sans-I/O core.
"""

from __future__ import annotations

import asyncio
import select
import socket
from typing import Any

import orjson
from websockets.client import ClientProtocol
from websockets.frames import Close, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri


class RawClient:
    def __init__(self, sock: socket.socket, protocol: ClientProtocol) -> None:
        self._sock = sock
        self._protocol = protocol
        self._loop = asyncio.get_running_loop()

    @classmethod
    async def connect(cls, url: str, receive_buffer: int = 4096) -> RawClient:
        uri = parse_uri(url)
        sock = socket.socket()
        # Before connecting, so the window the server sees stays small from the start.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        client = cls(sock, ClientProtocol(uri, max_size=None))
        await client._loop.sock_connect(sock, (uri.host, uri.port))
        client._protocol.send_request(client._protocol.connect())
        await client._flush()
        while not any(isinstance(e, Response) for e in await client._receive()):
            pass
        if client._protocol.handshake_exc is not None:
            raise client._protocol.handshake_exc
        return client

    async def send_json(self, message: Any) -> None:
        self._protocol.send_text(orjson.dumps(message))
        await self._flush()

    async def reset_by_server(self) -> bool:
        """Whether the server has gone (reset the connection), seen without reading."""
        poll = select.poll()
        poll.register(self._sock, select.POLLIN)
        return any(events & select.POLLHUP for _, events in poll.poll(0))

    async def read_until_close(self) -> tuple[list[Any], Close | None]:
        """Every frame's JSON up to the end of the connection, and the close frame, if any."""
        frames: list[Any] = []
        while not self._protocol.close_rcvd:
            events = await self._receive()
            if not events and self._protocol.state.name == "CLOSED":
                break  # end of stream without a close frame
            for event in events:
                if getattr(event, "opcode", None) == Opcode.TEXT:
                    frames.append(orjson.loads(event.data))
        return frames, self._protocol.close_rcvd

    def close(self) -> None:
        self._sock.close()

    async def _receive(self) -> list[object]:
        data = await self._loop.sock_recv(self._sock, 65536)
        if data:
            self._protocol.receive_data(data)
        else:
            self._protocol.receive_eof()
        await self._flush()  # pongs, and the echo of a close
        return list(self._protocol.events_received())

    async def _flush(self) -> None:
        for data in self._protocol.data_to_send():
            if data:
                await self._loop.sock_sendall(self._sock, data)
