"""The chart's values: documented, checked by values.schema.json, and refused (with a clear
message) when they cannot work."""

from __future__ import annotations

import re
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.deploy.manifests import CHART, render
from tests.deploy.value_sets import DATABASE_URL

WITH_DATABASE = {"database": {"url": DATABASE_URL}}


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"api": {"replicas": 2}}, "/api/replicas"),
        ({"ingres": {"enabled": True}}, "'ingres' not allowed"),
        ({"router": {"service": {"port": 80}}}, "/router/service"),
        ({"config": {"LOG_LEVEL": "DEBUG"}}, "LOG_LEVEL"),
        ({"config": {"DEXEC_DATABASE_URL": DATABASE_URL}}, "DEXEC_DATABASE_URL"),
        ({"config": {"DEXEC_API_PORT": "9000"}}, "DEXEC_API_PORT"),
        ({"api": {"env": {"DEXEC_API_PORT": "9000"}}}, "DEXEC_API_PORT"),
        ({"notifier": {"env": {"DEXEC_DATABASE_URL": DATABASE_URL}}}, "DEXEC_DATABASE_URL"),
        ({"config": {"DEXEC_WEBHOOK_SECRET": "in-a-configmap"}}, "DEXEC_WEBHOOK_SECRET"),
        ({"config": {"DEXEC_STREAM_REPLICAS": "7"}}, "DEXEC_STREAM_REPLICAS"),
        ({"database": {"url": "postgresql://u:p@h/db"}}, "/database/url"),
        ({"externalNats": {"url": "http://nats:4222"}}, "/externalNats/url"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"serviceMonitor": {"interval": "soon"}}, "/serviceMonitor/interval"),
    ],
)
def test_the_schema_refuses_values_that_would_be_ignored_or_break(
    values: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(complaint)):
        render({**WITH_DATABASE, **values})


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({}, "database.url, database.existingSecret or postgresql.enabled is required"),
        (
            {**WITH_DATABASE, "nats": {"enabled": False}},
            "externalNats.url is required when nats.enabled is false",
        ),
        (
            {**WITH_DATABASE, "nats": {"enabled": True, "config": {"cluster": {"replicas": 2}}}},
            "config.DEXEC_STREAM_REPLICAS (3) exceeds the NATS cluster size (2)",
        ),
        (
            {**WITH_DATABASE, "ingress": {"enabled": True, "tls": {"enabled": True}}},
            "ingress.tls.secretName is required",
        ),
        ({**WITH_DATABASE, "httpRoute": {"enabled": True}}, "httpRoute.parentRefs"),
    ],
)
def test_values_that_cannot_work_fail_with_what_to_set(
    values: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(helm.HelmRenderError, match=re.escape(complaint)):
        render(values)


@pytest.mark.parametrize("name", ["values.yaml", "values-dev.yaml", "values-tilt.yaml"])
def test_values_files_meet_the_schema(name: str) -> None:
    values = yaml.safe_load((CHART / name).read_text())
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(chart.merge_values(values))


KEY = re.compile(r"^(?P<indent> *)(?P<key>[\w./-]+):")


def test_every_value_is_documented() -> None:
    """Each key of values.yaml has a comment right above it, or sits under a key that has.

    (The four service blocks share one comment describing their keys.)"""
    undocumented = []
    documented_levels: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    previous = ""
    for number, line in enumerate((CHART / "values.yaml").read_text().splitlines(), 1):
        match = KEY.match(line)
        if match:
            indent = len(match["indent"])
            documented_levels = [(i, d) for i, d in documented_levels if i < indent]
            documented = previous.lstrip().startswith("#") or any(d for _, d in documented_levels)
            if not documented:
                undocumented.append(f"{number}: {line.strip()}")
            documented_levels.append((indent, documented))
        if line.strip():
            previous = line
    assert undocumented == []
