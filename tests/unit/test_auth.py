import hashlib

import pytest
from pydantic import ValidationError

from dexec.auth import AuthSettings, Tenants, hash_api_key


def test_a_key_is_found_by_its_digest_only() -> None:
    tenants = Tenants(AuthSettings(api_keys_enabled=True, api_keys={"a": hash_api_key("k1")}))
    assert tenants.resolve("k1") == "a"
    assert tenants.resolve("k2") is None
    assert tenants.resolve(None) is None
    assert tenants.resolve(hash_api_key("k1")) is None  # the digest is not a key


def test_digest_format() -> None:
    assert hash_api_key("k") == "sha256:" + hashlib.sha256(b"k").hexdigest()


def test_settings_refuse_plain_keys() -> None:
    with pytest.raises(ValidationError, match="digest"):
        AuthSettings(api_keys={"alice": "the-key-itself"})
