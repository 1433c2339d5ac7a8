from pydantic import Field

from dexec.settings import ChainSettings, CommonSettings


class ExecutorSettings(CommonSettings, ChainSettings):
    executor_concurrency: int = Field(1024, ge=1)
    executor_metrics_host: str = "127.0.0.1"
    # 0 turns the metrics endpoint off (tests run several executors in one process).
    executor_metrics_port: int = Field(9102, ge=0)
