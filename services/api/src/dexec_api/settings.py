from pydantic import Field

from dexec.auth import AuthSettings
from dexec.settings import CommonSettings


class ApiSettings(CommonSettings, AuthSettings):
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=0, le=65535)
    # Where clients reach the notifier's WebSocket; used for the links in responses.
    public_ws_url: str = "ws://127.0.0.1:8001"
    max_body_bytes: int = Field(16_384, ge=256)
    default_slippage_bps: int = Field(50, ge=0, le=10_000)
    idempotency_ttl_seconds: int = Field(24 * 3600, ge=60)
    # Per client (by address): sustained orders a second and burst; rate 0 turns it off.
    rate_limit_per_second: float = Field(200.0, ge=0)
    rate_limit_burst: int = Field(400, ge=1)
    # Refuse orders (503) while the router's backlog is over this many orders.
    max_router_backlog: int = Field(20_000, ge=0)
    backlog_refresh_seconds: float = Field(0.25, gt=0)
