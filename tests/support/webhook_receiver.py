"""A real local HTTP server that receives webhooks, and can be told to fail for a while."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

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
