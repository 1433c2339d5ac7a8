"""JSON log lines, trace configuration from OTEL_* and carrying context in message headers."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace import format_trace_id
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from dexec import tracing
from dexec.telemetry import ORDER_ID, JsonFormatter

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SAMPLED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
NOT_SAMPLED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"


@pytest.fixture
def traced() -> Iterator[TracerProvider]:
    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON))
    tracing.install(provider)
    try:
        yield provider
    finally:
        tracing.uninstall()


def log_line(message: str = "hello", **extra: object) -> dict[str, object]:
    record = logging.LogRecord("dexec.test", logging.INFO, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    return orjson.loads(JsonFormatter("router").format(record))


# --- logs ---------------------------------------------------------------------------------------


def test_a_log_line_has_time_level_service_and_the_order_from_extra() -> None:
    line = log_line(order_id="o-1")
    assert line["level"] == "info"
    assert line["service"] == "router"
    assert line["message"] == "hello"
    assert line["order_id"] == "o-1"
    assert str(line["time"]).endswith("+00:00")
    assert "trace_id" not in line  # tracing is off


def test_the_order_being_handled_names_every_line_of_its_task() -> None:
    token = ORDER_ID.set("o-2")
    try:
        assert log_line()["order_id"] == "o-2"
        assert log_line(order_id="o-3")["order_id"] == "o-3"  # an explicit one wins
    finally:
        ORDER_ID.reset(token)
    assert "order_id" not in log_line()


def test_other_extra_fields_are_written_as_structured_fields() -> None:
    quotes = [{"venue": "raydium", "outAmount": "100"}, {"venue": "meteora", "outAmount": "99"}]
    line = log_line(quotes=quotes, failed_venues={})
    assert line["quotes"] == quotes
    assert line["failed_venues"] == {}
    assert "args" not in line and "msg" not in line  # the record's own fields stay out


def test_a_line_logged_inside_a_span_carries_its_trace_id(traced: TracerProvider) -> None:
    with tracing.tracer("dexec.test").start_as_current_span("work") as span:
        line = log_line()
    context = span.get_span_context()
    assert line["trace_id"] == format_trace_id(context.trace_id)
    assert line["span_id"] == f"{context.span_id:016x}"


def test_an_unsampled_order_still_has_a_trace_id_in_its_logs() -> None:
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    tracing.install(provider)
    try:
        with tracing.consumer_span(
            "dexec.test", "handle", tracing.extract({"traceparent": NOT_SAMPLED})
        ) as span:
            line = log_line()
        assert not span.is_recording()
        assert line["trace_id"] == format_trace_id(TRACE_ID)
    finally:
        tracing.uninstall()


# --- OTEL_* -------------------------------------------------------------------------------------


def test_no_exporter_means_no_tracing_at_all() -> None:
    assert tracing.provider_from_env("api", {}) is None
    assert tracing.provider_from_env("api", {"OTEL_TRACES_EXPORTER": "none"}) is None
    disabled = {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}
    assert tracing.provider_from_env("api", disabled) is None


def test_an_exporter_turns_tracing_on_sampling_one_percent_by_default() -> None:
    provider = tracing.provider_from_env("router", {"OTEL_TRACES_EXPORTER": "console"})
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "dexec-router"
    description = provider.sampler.get_description()
    assert description.startswith("ParentBased{root:TraceIdRatioBased{0.01}")
    provider.shutdown()


def test_the_standard_variables_choose_sampler_and_service_name() -> None:
    environ = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_SERVICE_NAME": "router-eu",
        "OTEL_TRACES_SAMPLER": "traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
    }
    provider = tracing.provider_from_env("router", environ)
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "router-eu"
    assert provider.sampler.get_description() == "TraceIdRatioBased{0.25}"
    provider.shutdown()
    assert tracing.sampler({"OTEL_TRACES_SAMPLER": "always_on"}) is ALWAYS_ON
    ratio = {"OTEL_TRACES_SAMPLER_ARG": "0.5"}
    assert tracing.sampler(ratio).get_description().startswith("ParentBased{root:TraceIdRatio")


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_TRACES_EXPORTER": "jaeger"},
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "sometimes"},
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER_ARG": "half"},
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER_ARG": "2"},
    ],
)
def test_a_mistyped_variable_stops_the_service_instead_of_being_ignored(
    environ: dict[str, str],
) -> None:
    with pytest.raises(ValueError, match="OTEL_"):
        tracing.provider_from_env("api", environ)


# --- headers ------------------------------------------------------------------------------------


def test_with_tracing_off_messages_carry_no_context() -> None:
    headers: dict[str, str] = {}
    tracing.inject(headers)
    assert headers == {}
    assert tracing.extract({"traceparent": SAMPLED}) is None


def test_the_current_span_travels_in_traceparent(traced: TracerProvider) -> None:
    with tracing.tracer("dexec.test").start_as_current_span("publish") as span:
        headers: dict[str, str] = {}
        tracing.inject(headers)
        standard: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(standard)
    context = span.get_span_context()
    assert headers == standard  # what the W3C propagator writes, without its machinery
    assert headers["traceparent"].startswith(f"00-{format_trace_id(context.trace_id)}-")
    with tracing.consumer_span("dexec.test", "consume", tracing.extract(headers)) as child:
        pass
    assert child.get_span_context().trace_id == context.trace_id
    assert child.parent is not None and child.parent.span_id == context.span_id


def test_only_sampled_messages_yield_a_context_for_per_event_spans(
    traced: TracerProvider,
) -> None:
    assert tracing.extract_sampled({"traceparent": SAMPLED}) is not None
    assert tracing.extract_sampled({"traceparent": NOT_SAMPLED}) is None
    assert tracing.extract_sampled({"traceparent": "00-zz"}) is None
    assert tracing.extract_sampled({"Nats-Msg-Id": "x"}) is None
    assert tracing.extract_sampled(None) is None


def test_detail_spans_are_only_made_inside_a_recorded_span(traced: TracerProvider) -> None:
    with tracing.child_span("dexec.test", "send") as orphan:
        assert not orphan.is_recording()
    # The detail span is made once the outer span is current (a `with` enters left to right).
    with (
        tracing.tracer("dexec.test").start_as_current_span("handle"),
        tracing.child_span("dexec.test", "send") as detail,
    ):
        assert detail.is_recording()
