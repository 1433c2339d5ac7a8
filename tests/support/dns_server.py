"""A name server of the tests' own (UDP, 127.0.0.1, a free port): it answers A queries for the
names it is given and NXDOMAIN for every other."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import cast

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class _Answering(asyncio.DatagramProtocol):
    def __init__(self, records: dict[str, str]) -> None:
        self._records = {name.rstrip(".").lower(): address for name, address in records.items()}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # a datagram endpoint's

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        answer = dns.message.make_response(query)
        question = query.question[0]
        address = self._records.get(question.name.to_text().rstrip(".").lower())
        if address is None:
            answer.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.A:
            answer.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", address))
        # Any other type of a known name: an empty answer (NOERROR, no records).
        assert self.transport is not None
        self.transport.sendto(answer.to_wire(), addr)


@dataclass
class NameServer:
    records: dict[str, str]  # name -> IPv4 address
    address: str = field(init=False, default="")  # "127.0.0.1:<port>", once started

    async def __aenter__(self) -> NameServer:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _Answering(self.records), local_addr=("127.0.0.1", 0)
        )
        host, port = self._transport.get_extra_info("sockname")[:2]
        self.address = f"{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._transport.close()
