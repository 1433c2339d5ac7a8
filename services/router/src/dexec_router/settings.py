from pydantic import Field, field_validator

from dexec.settings import CommonSettings, MarketSettings


class RouterSettings(CommonSettings, MarketSettings):
    router_concurrency: int = Field(512, ge=1)
    # At most 4 s, below the 5 s the API waits for a router's answer to `GET /api/quote`
    # (dexec_api.market_routes): a slow venue must give a route or QUOTES_UNAVAILABLE, not
    # a timeout that reads as no router at all.
    quote_timeout_seconds: float = Field(2.0, gt=0, le=4)
    # The split search hands out the input in chunks of this share (5: a 5% grid).
    split_step_percent: int = Field(5, ge=1, le=100)
    router_metrics_host: str = "127.0.0.1"
    # 0 turns the metrics endpoint off (tests run several routers in one process).
    router_metrics_port: int = Field(9101, ge=0)

    @field_validator("split_step_percent")
    @classmethod
    def _divides_100(cls, value: int) -> int:
        if 100 % value:
            raise ValueError("split_step_percent must divide 100 (1, 2, 4, 5, 10, 20, 25, 50, 100)")
        return value
