from pydantic import Field

from dexec.auth import AuthSettings
from dexec.settings import CommonSettings, WebhookTargetSettings

DEFAULT_BACKFILL_CACHE_BYTES = 8 * 1024 * 1024
# In the source, so anyone can forge a signature made with it: for development only.
DEVELOPMENT_WEBHOOK_SECRET = "dexec-development-webhook-secret"


class NotifierSettings(CommonSettings, AuthSettings, WebhookTargetSettings):
    notifier_host: str = "127.0.0.1"
    notifier_port: int = Field(8001, ge=0, le=65535)
    recorder_batch_size: int = Field(500, ge=1, le=10_000)
    # After a batch that was not full, wait this long (from the batch's fetch) before the next:
    # below saturation each fetch would otherwise bring one or two events, and each its own
    # transaction. Postgres lags the stream by up to this much more (the order listing shows
    # it; GET of one order folds an unfinished order from the stream).
    recorder_linger_seconds: float = Field(0.05, ge=0, le=5)
    # The longest a Postgres call may take (a recorder batch with its retries of single
    # events, a webhook claim, check or update): a stalled server or a connection the network
    # dropped without a word answers nothing, and the call would wait forever. Given up, the
    # batch comes back from NATS and the webhook row on its lease.
    db_timeout_seconds: float = Field(10.0, gt=0, le=300)
    # Events a slow WebSocket client may have queued before it is cut off (close 1008).
    ws_queue_limit: int = Field(1_000, ge=1)
    # A send that takes longer means the client stopped reading: cut it off (close 1008).
    ws_send_timeout_seconds: float = Field(5.0, gt=0)
    # Protocol-level ping/pong keepalive; a client that misses a pong is disconnected.
    ws_ping_interval_seconds: float = Field(20.0, gt=0)
    # Order ids a client (a tenant's multiplexed sockets together, or one anonymous socket) may
    # subscribe per second on average, each a backfill to read (`budget`), and at once: by
    # default twice a socket's capacity of 1,000, as a reconnecting client resubscribes all its
    # orders. Beyond, the ids are refused with RATE_LIMITED.
    ws_subscribe_rate: float = Field(1_000.0, gt=0)
    ws_subscribe_burst: int = Field(2_000, ge=1)
    # Single-order sockets close with 1000 after the order's terminal event.
    ws_close_on_terminal: bool = True
    # Backfills come from the live consumer's cache of recent orders' events (the stream is
    # the fallback): its size cap in bytes (oldest orders go first; 0 turns the cache off) and
    # how long an order stays after its terminal event. 8 MiB holds the last ~1,000 orders
    # (~7 KiB each), two seconds of them at 500/s: clients subscribe within moments of
    # submitting, so at 500/s offered with ~5,000 orders in flight 99.6% of backfills still
    # came from it (as with 16 MiB), and the notifier peaked at 134 MiB (BENCHMARKS.md).
    ws_backfill_cache_bytes: int = Field(DEFAULT_BACKFILL_CACHE_BYTES, ge=0)
    ws_backfill_cache_ttl_seconds: float = Field(10.0, ge=0)
    # Webhooks: each event POSTed to the order's webhookUrl, signed with HMAC-SHA256.
    webhook_secret: str = DEVELOPMENT_WEBHOOK_SECRET
    webhook_timeout_seconds: float = Field(5.0, gt=0)
    webhook_backoff_base_seconds: float = Field(1.0, gt=0)
    webhook_backoff_max_seconds: float = Field(60.0, gt=0)
    # An event still undelivered this long after it happened is dropped (and logged).
    webhook_give_up_seconds: float = Field(3600.0, gt=0)
    # POSTs under way at once per replica, and of those, to any one host: a receiver that
    # never answers holds its POSTs for the whole timeout, and must not take every slot.
    webhook_concurrency: int = Field(64, ge=1)
    webhook_host_concurrency: int = Field(8, ge=1)
    # Name servers for webhook hosts ("10.0.0.53:53,10.0.0.54"): empty, the system's
    # (/etc/resolv.conf). For a deployment whose egress has a resolver of its own.
    webhook_nameservers: str = ""
    # How often the dispatcher looks for due deliveries without being woken: rows another
    # replica's recorder queued, and deliveries whose replica died mid-POST (lease run out).
    webhook_poll_seconds: float = Field(1.0, gt=0)

    @property
    def webhook_nameserver_list(self) -> list[str] | None:
        servers = [s.strip() for s in self.webhook_nameservers.split(",") if s.strip()]
        return servers or None
