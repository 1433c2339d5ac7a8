"""Settings shared by every service, read from `DEXEC_*` environment variables.

Each service extends `CommonSettings` with its own fields; a setting is declared in exactly one
class, so the configuration table in the README maps one-to-one onto these classes.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class LatencyMode(StrEnum):
    REALISTIC = "realistic"
    ZERO = "zero"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEXEC_", extra="ignore")

    nats_url: str = "nats://127.0.0.1:4222"
    database_url: str = "postgresql+asyncpg://dexec@127.0.0.1:5432/dexec"
    log_level: str = "INFO"
    db_pool_size: int = Field(10, ge=1)

    stream_max_age_seconds: int = Field(7 * 24 * 3600, gt=0)
    stream_replicas: int = Field(1, ge=1, le=5)
    # JetStream drops a re-published transition with the same Nats-Msg-Id inside this window.
    duplicate_window_seconds: int = Field(600, ge=600)

    retry_max_attempts: int = Field(3, ge=1, le=10)
    retry_backoff_base_seconds: float = Field(1.0, ge=0)
    # How long JetStream waits for an ack before redelivering to another replica.
    ack_wait_seconds: float = Field(30.0, gt=0)


class MarketSettings(BaseSettings):
    """The simulated market and chain: used by the router (quotes) and executor (re-pricing)."""

    model_config = SettingsConfigDict(env_prefix="DEXEC_", extra="ignore")

    market_seed: int = 7
    # A market file (TOML or JSON); unset: the default market shipped with dexec.
    market_file: str | None = None
    latency_mode: LatencyMode = LatencyMode.REALISTIC
    quote_latency_ms_min: int = Field(100, ge=0)
    quote_latency_ms_max: int = Field(300, ge=0)
    # Seeded share of venue quote requests that fail at once (503) or never answer (timeout).
    quote_failure_rate: Decimal = Field(Decimal(0), ge=0, le=1)
    quote_timeout_rate: Decimal = Field(Decimal(0), ge=0, le=1)
    # Fault injection for tests and demos: venues that fail every quote ("meteora,raydium").
    venues_down: str = ""
    slot_ms: int = Field(400, gt=0)
    confirm_slots_min: int = Field(1, ge=0)
    confirm_slots_max: int = Field(3, ge=0)
    # The priority fee bid per 200,000 compute units: a transaction pays it pro rata to the
    # compute-unit limit its route needs (more legs, hops or SOL wrapping cost more).
    priority_fee_lamports: int = Field(10_000, ge=0)
    # Seeded failure rates of the simulated RPC node, per send attempt (0..1, Decimal: exact).
    chain_rate_limit_rate: Decimal = Field(Decimal(0), ge=0, le=1)
    chain_insufficient_funds_rate: Decimal = Field(Decimal(0), ge=0, le=1)
    # Fault injection for tests and demos: the first N send attempts of every order hit RPC 429.
    chain_rate_limit_first_attempts: int = Field(0, ge=0)
    # Simulated front-running: every swap lands this many bps worse than the pool's price.
    chain_frontrun_bps: int = Field(0, ge=0, le=10_000)

    @model_validator(mode="after")
    def _ranges_run_upwards(self) -> Self:
        # A delay is drawn from min..max: a range running the other way would fail every
        # quote (max + 1 divides by zero) or give delays outside the documented range.
        for name in ("quote_latency_ms", "confirm_slots"):
            if getattr(self, f"{name}_min") > getattr(self, f"{name}_max"):
                variable = f"DEXEC_{name.upper()}"
                raise ValueError(f"{variable}_MIN must not exceed {variable}_MAX")
        return self

    @property
    def down_venues(self) -> frozenset[str]:
        return frozenset(v.strip().lower() for v in self.venues_down.split(",") if v.strip())


class ChainSettings(MarketSettings):
    """The simulated chain's own behaviour (the executor's side of the market)."""

    blockhash_valid_slots: int = Field(151, ge=2)
    # Seeded share of sends the leader silently drops: they never land, the blockhash expires.
    chain_drop_rate: Decimal = Field(Decimal(0), ge=0, le=1)
    # Seeded share of sends answered "node is behind" (-32005), worth retrying.
    chain_node_behind_rate: Decimal = Field(Decimal(0), ge=0, le=1)
    # Fault injection for tests and demos: the first N sends of every order are dropped.
    chain_drop_first_attempts: int = Field(0, ge=0)


class WebhookTargetSettings(BaseSettings):
    """Where webhooks may go: the API checks a `webhookUrl` at submit, the notifier at send."""

    model_config = SettingsConfigDict(env_prefix="DEXEC_", extra="ignore")

    # Off, a webhook to localhost or a loopback, private, link-local or otherwise non-public
    # address is refused: a client must not make the notifier POST into our own network (SSRF).
    # On only where the receivers are local (`make up`, tests).
    webhook_allow_private_targets: bool = False
