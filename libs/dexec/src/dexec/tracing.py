"""OpenTelemetry traces: one trace per order, carried across NATS by the `traceparent` header.

The API's submit starts the trace; `dexec.bus.publisher` writes the current span's context into
each event's `traceparent` header (W3C Trace Context), and every consumer (the stage workers,
the recorder, webhooks, the live fan-out) continues from the header of the message it handles.
A redelivered message carries the same header, so retries join the order's trace.

Configuration is the standard `OTEL_*` variables, read once at process start by `configure`:

- `OTEL_TRACES_EXPORTER`: `otlp` (OTLP over HTTP/protobuf), `console` or `none` (the default:
  no SDK at all, so tracing costs one flag check per message);
- `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` and the exporter's
  other variables, read by the exporter itself;
- `OTEL_SERVICE_NAME` (default `dexec-<service>`), `OTEL_RESOURCE_ATTRIBUTES`;
- `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`; unset, `parentbased_traceidratio` at 0.01:
  the API samples 1% of orders and every later span follows the API's decision.

An unsampled order still has a trace id (propagated with the sampled flag off), which the JSON
logs carry; only sampled spans are recorded and exported. Code that builds span attributes
checks `span.is_recording()` first, and per-event spans in the notifier are only started for
messages whose `traceparent` says sampled.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
# `FastAPI(telemetry=...)` for the api and notifier: FastAPI's own request spans, metrics and
# logs stay off (see `configure`); dexec_http_request_duration_seconds times requests.
FASTAPI_TELEMETRY_OFF = {"tracing": False, "metrics": False, "logs": False}
DEFAULT_SAMPLE_RATIO = 0.01
# `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`
_TRACEPARENT_LENGTH = 55
_FLAGS = slice(53, 55)

_PROPAGATOR = TraceContextTextMapPropagator()
_NOOP_PROVIDER = trace.NoOpTracerProvider()


class _State:
    """The provider in use; a class attribute read on every message, so kept to one lookup."""

    on = False
    provider: trace.TracerProvider = _NOOP_PROVIDER
    tracers: dict[str, Tracer] = {}


def enabled() -> bool:
    return _State.on


def tracer(scope: str) -> Tracer:
    """The tracer of an instrumentation scope (`dexec.api`, `dexec.router`, ...)."""
    found = _State.tracers.get(scope)
    if found is None:
        found = _State.tracers[scope] = _State.provider.get_tracer(scope)
    return found


def install(provider: trace.TracerProvider) -> None:
    """Use `provider` from now on (tests install one with an in-memory exporter)."""
    _State.provider, _State.tracers, _State.on = provider, {}, True


def uninstall() -> None:
    """Back to no tracing at all."""
    _State.provider, _State.tracers, _State.on = _NOOP_PROVIDER, {}, False


# --- configuration from OTEL_* ----------------------------------------------------------------


def configure(service: str) -> TracerProvider | None:
    """At process start: trace as the environment says; returns the provider, or None (off)."""
    provider = provider_from_env(service, os.environ)
    if provider is not None:
        # Not the global provider on purpose: FastAPI traces every request itself once one is
        # set (health checks and scrapes included, and continuing a client's traceparent);
        # the spans here are only dexec's, one trace per order.
        install(provider)
    return provider


def provider_from_env(service: str, environ: Mapping[str, str]) -> TracerProvider | None:
    """The provider the OTEL_* variables describe; None when they turn tracing off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "none").split(",")]
    exporters = [_exporter(name, environ) for name in names if name and name != "none"]
    if not exporters:
        return None
    processors: list[SpanProcessor] = [BatchSpanProcessor(exporter) for exporter in exporters]
    return build_provider(service, processors, environ)


def build_provider(
    service: str, processors: list[SpanProcessor], environ: Mapping[str, str] = os.environ
) -> TracerProvider:
    # OTEL_SERVICE_NAME, or a service.name in OTEL_RESOURCE_ATTRIBUTES, wins over the default.
    name = environ.get("OTEL_SERVICE_NAME")
    if not name and "service.name=" not in environ.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        name = f"dexec-{service}"
    attributes = {SERVICE_NAME: name} if name else {}
    provider = TracerProvider(resource=Resource.create(attributes), sampler=sampler(environ))
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def sampler(environ: Mapping[str, str] = os.environ) -> Sampler:
    """OTEL_TRACES_SAMPLER and its argument, as the specification names them.

    Unset, `parentbased_traceidratio` at DEFAULT_SAMPLE_RATIO (the SDK's own default would
    record every order).
    """
    name = (environ.get("OTEL_TRACES_SAMPLER") or "parentbased_traceidratio").strip().lower()
    fixed = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "parentbased_always_on": ParentBased(ALWAYS_ON),
        "parentbased_always_off": ParentBased(ALWAYS_OFF),
    }
    if name in fixed:
        return fixed[name]
    if name not in ("traceidratio", "parentbased_traceidratio"):
        raise ValueError(f"OTEL_TRACES_SAMPLER: unknown sampler {name!r}")
    argument = environ.get("OTEL_TRACES_SAMPLER_ARG") or str(DEFAULT_SAMPLE_RATIO)
    try:
        ratio = float(argument)
    except ValueError:
        raise ValueError(f"OTEL_TRACES_SAMPLER_ARG: {argument!r} is not a number") from None
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"OTEL_TRACES_SAMPLER_ARG: {ratio} is not between 0 and 1")
    return TraceIdRatioBased(ratio) if name == "traceidratio" else ParentBasedTraceIdRatio(ratio)


def _exporter(name: str, environ: Mapping[str, str]) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
        )
        if protocol != "http/protobuf":
            log.warning("OTLP protocol %s is not available; exporting over http/protobuf", protocol)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (otlp, console, none)")


# --- carrying the context on messages ---------------------------------------------------------


def inject(headers: dict[str, str]) -> None:
    """Write the current span's context into `headers` (nothing when tracing is off)."""
    if not _State.on:
        return
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        # What TraceContextTextMapPropagator.inject writes, without its carrier machinery.
        headers[TRACEPARENT] = (
            f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
        )


def extract(headers: Mapping[str, str] | None) -> Context | None:
    """The context a message's `traceparent` carries (None: tracing off, or no header)."""
    if not _State.on or not headers:
        return None
    traceparent = headers.get(TRACEPARENT)
    if traceparent is None:
        return None
    return _PROPAGATOR.extract({TRACEPARENT: traceparent})


def extract_sampled(headers: Mapping[str, str] | None) -> Context | None:
    """Like `extract`, but None unless the header's sampled flag is set.

    For consumers that see every event of every order (recorder, webhooks, live fan-out): an
    unsampled message costs them a header lookup and a string check, nothing more.
    """
    if not _State.on or not headers:
        return None
    traceparent = headers.get(TRACEPARENT)
    if traceparent is None or len(traceparent) != _TRACEPARENT_LENGTH:
        return None
    try:
        sampled = int(traceparent[_FLAGS], 16) & 1
    except ValueError:
        return None
    return _PROPAGATOR.extract({TRACEPARENT: traceparent}) if sampled else None


# --- spans --------------------------------------------------------------------------------------


def root_span(scope: str, name: str) -> contextlib.AbstractContextManager[Span]:
    """A new trace (the sampler decides whether it is recorded), current while it is open.

    Not continued from the caller's context on purpose: a client's `traceparent` would let any
    client choose which orders are sampled. Exceptions are not marked as span errors: the
    caller knows whether one is the client's fault (a 4xx) or ours.
    """
    if not _State.on:
        return contextlib.nullcontext(INVALID_SPAN)
    return tracer(scope).start_as_current_span(
        name,
        context=Context(),
        kind=SpanKind.SERVER,
        record_exception=False,
        set_status_on_exception=False,
    )


def consumer_span(
    scope: str, name: str, parent: Context | None
) -> contextlib.AbstractContextManager[Span]:
    """The current span while handling one message, child of the context it carried.

    With tracing off this is a context manager yielding the invalid span (which records
    nothing), so callers need no branch of their own.
    """
    if not _State.on:
        return contextlib.nullcontext(INVALID_SPAN)
    return tracer(scope).start_as_current_span(name, context=parent, kind=SpanKind.CONSUMER)


def child_span(
    scope: str, name: str, kind: SpanKind = SpanKind.INTERNAL
) -> contextlib.AbstractContextManager[Span]:
    """A child of the current span only if that one is recorded (sampled); else nothing.

    Detail spans (a publish, a chain call) are worth having inside a sampled trace and not
    worth creating, even unrecorded, for the 99% of orders that are not sampled.
    """
    if not _State.on or not trace.get_current_span().is_recording():
        return contextlib.nullcontext(INVALID_SPAN)
    return tracer(scope).start_as_current_span(name, kind=kind)


def current_ids() -> tuple[str, str] | None:
    """The current trace and span id in hex, for log lines (None: tracing off, or no span)."""
    if not _State.on:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"
