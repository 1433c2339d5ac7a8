"""A real local HTTP server that receives webhooks, and can be told to fail for a while."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dexec_tools.servers import free_port


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class WebhookReceiver:
    fail_first: int = 0  # answer 503 to this many requests before accepting
    host: str = "127.0.0.1"  # the address it listens on
    received: list[Received] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return self.url_via(f"[{self.host}]" if ":" in self.host else self.host)

    def url_via(self, name: str) -> str:
        """The hook's URL under another name for its host (one that resolves to it)."""
        return f"http://{name}:{self.port}/hook"

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.received if r.answered == 200]

    async def _hook(self, request: Request) -> Response:
        status = 503 if len(self.received) < self.fail_first else 200
        self.received.append(Received(dict(request.headers), await request.body(), status))
        self.arrived.set()
        return Response(status_code=status)

    async def __aenter__(self) -> WebhookReceiver:
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        config = uvicorn.Config(app, host=self.host, port=self.port, log_config=None)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        async with asyncio.timeout(10):  # a server that never starts fails the test
            while not self._server.started:
                if self._task.done():
                    self._task.result()
                await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.should_exit = True
        await self._task


@dataclass
class Trickled:
    """One POST to a `TricklingReceiver`: when it came, and when its client hung up."""

    event_id: str
    arrived: float  # loop time
    closed: float | None = None  # loop time the client closed the connection, if it has


class RawHttpServer:
    """A bare asyncio server on 127.0.0.1 for answers no HTTP framework would give: each
    connection's request is read whole, then `_answer` writes what it likes. Every handler
    still running is cancelled when the server stops."""

    port: int
    _handlers: set[asyncio.Task[None]]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _answer(
        self, headers: dict[str, str], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        raise NotImplementedError

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")[1:]
            headers = dict(line.lower().split(": ", 1) for line in lines if line)
            await reader.readexactly(int(headers.get("content-length", "0")))
            await self._answer(headers, reader, writer)
        finally:
            writer.close()
            self._handlers.discard(task)

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()


@dataclass
class TricklingReceiver(RawHttpServer):
    """A raw HTTP server that answers every POST one byte at a time, never finishing.

    It reads the whole request, sends the status line and headers of a 200 with a large body,
    then one byte of the body every `interval` seconds: each of the client's reads gets a byte
    well within any read timeout, yet the answer never ends. It notes when each client hangs
    up.
    """

    interval: float = 0.05
    port: int = field(default_factory=free_port)
    requests: list[Trickled] = field(default_factory=list)
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def open(self) -> list[Trickled]:
        """The requests whose clients are still connected."""
        return [r for r in self.requests if r.closed is None]

    async def _answer(
        self, headers: dict[str, str], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        request = Trickled(headers.get("x-dexec-event-id", ""), loop.time())
        self.requests.append(request)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
        hung_up = asyncio.ensure_future(reader.read(1))  # b"" once the client closes
        try:
            while not hung_up.done():
                writer.write(b".")
                await writer.drain()
                await asyncio.wait({hung_up}, timeout=self.interval)
        except ConnectionError:
            pass  # the client closed while this was writing
        finally:
            hung_up.cancel()
            if hung_up.done() and not hung_up.cancelled():
                hung_up.exception()  # a reset instead of a close: retrieved, not logged
        request.closed = loop.time()


@dataclass
class FloodingReceiver(RawHttpServer):
    """A raw HTTP server that answers every POST 200 with a body of `size` bytes, written as
    fast as the client takes it, and counts how much the client took before it hung up."""

    size: int = 1 << 30
    port: int = field(default_factory=free_port)
    written: list[int] = field(default_factory=list)  # bytes of body taken, per POST ended
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def _answer(
        self, headers: dict[str, str], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        chunk = b"x" * (1 << 20)
        written = 0
        try:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % self.size)
            while written < self.size:
                writer.write(chunk)
                await writer.drain()  # raises once the client has closed
                written += len(chunk)
        except ConnectionError:
            pass
        finally:
            self.written.append(written)
