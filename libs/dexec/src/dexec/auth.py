"""Optional API keys: each key belongs to a tenant, and services keep only the keys' hashes.

`DEXEC_API_KEYS` maps tenant → `sha256:<hex digest of the key>`; print a key's digest with
`python -m dexec.auth <key>`. A key is looked up by its digest, so no service ever holds the
keys themselves.
"""

from __future__ import annotations

import hashlib
import re
import sys

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# The longest tenant name: the width of `orders.tenant`, where every order records its tenant.
TENANT_MAX_LENGTH = 64


def hash_api_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEXEC_", extra="ignore")

    api_keys_enabled: bool = False
    api_keys: dict[str, str] = {}

    @field_validator("api_keys")
    @classmethod
    def _only_digests(cls, keys: dict[str, str]) -> dict[str, str]:
        owners: dict[str, str] = {}
        for tenant, digest in keys.items():
            # A name the orders table cannot hold would have every order of the tenant
            # accepted and then refused by the recorder: never listed, gone with the stream.
            if not 1 <= len(tenant) <= TENANT_MAX_LENGTH:
                raise ValueError(
                    f"tenant {tenant[:TENANT_MAX_LENGTH]!r}…: a tenant's name takes 1 to "
                    f"{TENANT_MAX_LENGTH} characters"
                )
            if not DIGEST.match(digest):
                raise ValueError(
                    f"tenant {tenant!r}: give the key's digest (python -m dexec.auth KEY), "
                    "not the key"
                )
            if digest in owners:  # one key for two tenants: whose orders would it place?
                raise ValueError(f"tenants {owners[digest]!r} and {tenant!r} have the same key")
            owners[digest] = tenant
        return keys


class Tenants:
    def __init__(self, settings: AuthSettings) -> None:
        self.enabled = settings.api_keys_enabled
        self._by_digest = {digest: tenant for tenant, digest in settings.api_keys.items()}

    def resolve(self, key: str | None) -> str | None:
        """The key's tenant, or None for a missing or unknown key."""
        return self._by_digest.get(hash_api_key(key)) if key else None


if __name__ == "__main__":
    for arg in sys.argv[1:] or [sys.stdin.readline().strip()]:
        print(hash_api_key(arg))
