import hashlib

import pytest
from pydantic import ValidationError

from dexec.auth import TENANT_MAX_LENGTH, AuthSettings, Tenants, hash_api_key
from dexec.db.models import OrderRow


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


@pytest.mark.parametrize("tenant", ["", "t" * (TENANT_MAX_LENGTH + 1)])
def test_settings_refuse_a_tenant_name_the_orders_table_cannot_hold(tenant: str) -> None:
    with pytest.raises(ValidationError, match=f"1 to {TENANT_MAX_LENGTH} characters"):
        AuthSettings(api_keys={tenant: hash_api_key("k")})


def test_the_longest_tenant_name_fits_the_orders_table() -> None:
    longest = "t" * TENANT_MAX_LENGTH
    assert Tenants(AuthSettings(api_keys={longest: hash_api_key("k")})).resolve("k") == longest
    assert OrderRow.__table__.c.tenant.type.length == TENANT_MAX_LENGTH


def test_settings_refuse_one_key_for_two_tenants() -> None:
    """Else the last tenant named would silently take the other's orders."""
    with pytest.raises(ValidationError, match="'alice' and 'bob' have the same key"):
        AuthSettings(api_keys={"alice": hash_api_key("k"), "bob": hash_api_key("k")})
