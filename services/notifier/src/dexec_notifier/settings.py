from pydantic import Field

from dexec.settings import CommonSettings


class NotifierSettings(CommonSettings):
    notifier_host: str = "127.0.0.1"
    notifier_port: int = Field(8001, ge=0, le=65535)
    recorder_batch_size: int = Field(500, ge=1, le=10_000)
    # Events a slow WebSocket client may have queued before it is cut off.
    ws_queue_limit: int = Field(1_000, ge=10)
