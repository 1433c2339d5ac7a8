from pydantic import Field

from dexec.settings import CommonSettings, MarketSettings


class RouterSettings(CommonSettings, MarketSettings):
    router_concurrency: int = Field(512, ge=1)
    quote_timeout_seconds: float = Field(2.0, gt=0)
    router_metrics_host: str = "127.0.0.1"
    # 0 turns the metrics endpoint off (tests run several routers in one process).
    router_metrics_port: int = Field(9101, ge=0)
