"""Base58 (Bitcoin alphabet), the encoding of Solana addresses and signatures."""

from __future__ import annotations

import hashlib

_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, rem = divmod(number, 58)
        out = _ALPHABET[rem] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def derived_address(*parts: object) -> str:
    """A stable, address-shaped name (32 bytes, base58) for something the simulation made up."""
    return b58encode(hashlib.sha256(":".join(map(str, parts)).encode()).digest())
