from pydantic import Field

from dexec.settings import CommonSettings


class ApiSettings(CommonSettings):
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=0, le=65535)
    # Where clients reach the notifier's WebSocket; used for the links in responses.
    public_ws_url: str = "ws://127.0.0.1:8001"
    max_body_bytes: int = Field(16_384, ge=256)
    default_slippage_bps: int = Field(50, ge=0, le=10_000)
    idempotency_ttl_seconds: int = Field(24 * 3600, ge=60)
