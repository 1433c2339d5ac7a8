"""What the Docker branch of the test backends relies on: docker-py publishes a port given as
a one-element (address,) tuple on that address, at a port Docker picks."""

from __future__ import annotations

from docker.utils import convert_port_bindings


def test_an_address_alone_publishes_on_it_at_any_free_port() -> None:
    assert convert_port_bindings({4222: ("127.0.0.1",)}) == {
        "4222/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]
    }
