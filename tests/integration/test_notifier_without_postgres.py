"""The notifier while Postgres does not answer: its calls give up, and nothing is lost.

Postgres frozen (SIGSTOP) keeps its sockets: the recorder's pooled connection and the webhook
dispatcher's claim wait for an answer that never comes, as on a connection the network
dropped without a word. Each call must give up after `db_timeout_seconds` (counted in
`dexec_notifier_db_failures_total`), and once Postgres answers again the event held back is
recorded and its webhook sent.
"""

from __future__ import annotations

from prometheus_client import REGISTRY

from dexec_tools.servers import PostgresServer
from tests.support.freezing import frozen
from tests.support.stack import Stack, start_stack
from tests.support.waiting import eventually
from tests.support.webhook_receiver import WebhookReceiver

# Orders stay `pending`: the recorder and the webhooks are all this test needs.
NOTIFIER_ONLY = frozenset({"router", "executor"})


def given_up(call: str) -> float:
    return REGISTRY.get_sample_value("dexec_notifier_db_failures_total", {"call": call}) or 0.0


async def recorded(stack: Stack, order_id: str) -> bool:
    return bool(await stack.scalar("SELECT count(*) FROM orders WHERE id = :id", id=order_id))


async def test_the_notifiers_postgres_calls_give_up_and_catch_up(
    nats_url: str, own_postgres: PostgresServer
) -> None:
    async with WebhookReceiver() as receiver:
        stack = await start_stack(
            nats_url,
            own_postgres.url(),
            without=NOTIFIER_ONLY,
            db_timeout_seconds=0.5,
            webhook_allow_private_targets=True,
            webhook_poll_seconds=0.2,
        )
        try:
            order = {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1"}
            first = (await stack.submit(order)).json()["orderId"]
            # Recorded: the recorder's pooled connection is open, and the freeze leaves it so.
            await eventually(lambda: recorded(stack, first), what="the first order recorded")
            before = {call: given_up(call) for call in ("record", "claim")}
            assert own_postgres.pid is not None

            async def both_given_up() -> bool:
                return all(given_up(call) > before[call] for call in before)

            async def delivered() -> bool:
                return bool(receiver.accepted)

            with frozen(own_postgres.pid):
                second = (await stack.submit({**order, "webhookUrl": receiver.url})).json()
                await eventually(
                    both_given_up,
                    timeout=15,
                    what="the recorder's write and the webhook claim given up on",
                )

            order_id = second["orderId"]
            await eventually(lambda: recorded(stack, order_id), what="the held event recorded")
            await eventually(delivered, what="its webhook delivered")
            sent = [r.headers["x-dexec-event-id"] for r in receiver.accepted]
            assert sent == [f"{order_id}:pending"]
        finally:
            await stack.stop()
