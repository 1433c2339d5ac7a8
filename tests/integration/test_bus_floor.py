"""The bus floor harness drives every order through a real NATS, once per role."""

from __future__ import annotations

from dexec_executor.settings import ExecutorSettings
from dexec_notifier.settings import NotifierSettings
from dexec_router.settings import RouterSettings
from dexec_tools.bus_floor import roles
from dexec_tools.bus_floor.__main__ import run_floor
from dexec_tools.bus_floor.roles import EVENTS_PER_ORDER, ROLES


def test_every_order_reaches_every_consumer_once_and_each_process_is_measured() -> None:
    orders = 120
    report = run_floor(orders, concurrency=16, timeout=120)
    events = orders * EVENTS_PER_ORDER
    assert report.counts == {
        "finished": orders,
        "live": events,
        "recorded": events,
    }
    assert set(report.cpu_ms_per_order) == {*ROLES, "nats"}
    assert all(ms > 0 for ms in report.cpu_ms_per_order.values())
    assert report.total_cpu_ms_per_order == round(sum(report.cpu_ms_per_order.values()), 3)
    assert report.two_core_ceiling == round(2000 / report.total_cpu_ms_per_order)


def test_the_roles_use_the_services_defaults() -> None:
    assert RouterSettings.model_fields["router_concurrency"].default == roles.ROUTER_CONCURRENCY
    executor = ExecutorSettings.model_fields["executor_concurrency"].default
    assert executor == roles.EXECUTOR_CONCURRENCY
    assert NotifierSettings.model_fields["recorder_batch_size"].default == roles.RECORDER_BATCH
