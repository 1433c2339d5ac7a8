from typing import Self

from pydantic import Field, field_validator, model_validator

from dexec.auth import AuthSettings
from dexec.settings import CommonSettings, WebhookTargetSettings


class ApiSettings(CommonSettings, AuthSettings, WebhookTargetSettings):
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=0, le=65535)
    # Where clients reach the notifier's WebSocket; used for the links in responses.
    public_ws_url: str = "ws://127.0.0.1:8001"
    max_body_bytes: int = Field(16_384, ge=256)
    default_slippage_bps: int = Field(50, ge=0, le=10_000)
    # How long a submit keeps publishing its order's `pending` while the stream does not ack,
    # before it answers 503 (COMMIT_UNCERTAIN if an attempt may have been stored).
    commit_timeout_seconds: float = Field(10.0, gt=0, le=60)
    # How long a read waits for Postgres (connecting included) before it counts Postgres as
    # unavailable: GET of one order then answers from the stream, a listing 503. Postgres
    # normally answers in milliseconds; a stopped one would otherwise hang the request.
    db_read_timeout_seconds: float = Field(2.0, gt=0, le=60)
    idempotency_ttl_seconds: int = Field(24 * 3600, ge=60)
    # Proxies whose X-Forwarded-For names the client (addresses or CIDRs, comma-separated;
    # "*" trusts any, which lets every client pick its own address and so its own limit):
    # rate limits go by client address, so list the ingress's addresses or every client
    # behind it shares one limit. Only list what clients cannot bypass.
    forwarded_allow_ips: str = "127.0.0.1"
    # Per client (tenant, or address): orders and quotes a second, and burst; 0 turns it off.
    rate_limit_per_second: float = Field(200.0, ge=0)
    rate_limit_burst: int = Field(400, ge=1)
    # Refuse orders (503) while the router's backlog is over this many orders.
    max_router_backlog: int = Field(20_000, ge=0)
    backlog_refresh_seconds: float = Field(0.25, gt=0)

    @field_validator("public_ws_url")
    @classmethod
    def _without_trailing_slash(cls, url: str) -> str:
        return url.rstrip("/")  # paths are joined on with their own "/"

    @model_validator(mode="after")
    def _keys_expire_before_their_orders(self) -> Self:
        # A replayed key whose order's `pending` has aged out of the stream would find no
        # `pending` and publish it again: the same order would run twice.
        if self.idempotency_ttl_seconds > self.stream_max_age_seconds:
            raise ValueError(
                "DEXEC_IDEMPOTENCY_TTL_SECONDS must not exceed DEXEC_STREAM_MAX_AGE_SECONDS"
            )
        return self
