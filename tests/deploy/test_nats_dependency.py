"""The official NATS chart as a dependency.

The tests cannot fetch it (no chart repository is reachable here), so the chart is rendered
without it everywhere else, and this file checks what is ours: the declaration, the values we
hand the NATS chart, that the stream fits the cluster they describe, and that the NATS URL names
the Service that chart creates. With the archive vendored (`helm dependency build
charts/dexec`), the last test renders and validates the NATS objects too.
"""

from __future__ import annotations

import helm_python as helm
import pytest
import yaml

from tests.deploy.manifests import (
    CHART,
    by_kind_and_name,
    nats_chart_vendored,
    render_objects,
    validate,
    values_files,
)
from tests.deploy.value_sets import DATABASE_URL

NATS_REPOSITORY = "https://nats-io.github.io/k8s/helm/charts/"


def test_the_nats_chart_is_declared_with_its_repository_and_a_switch() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    [nats] = chart["dependencies"]
    assert nats["name"] == "nats"
    assert nats["repository"] == NATS_REPOSITORY
    assert nats["condition"] == "nats.enabled"
    # The 1.x values layout (config.cluster, config.jetstream, container.merge) that ours use.
    assert nats["version"].startswith("~1.")
    [listed] = helm.dependency_list(CHART)
    assert listed["status"] in {"missing", "ok"}


@pytest.mark.parametrize(
    ("files", "servers"),
    [(["values.yaml"], 3), (["values.yaml", "values-dev.yaml"], 1)],
)
def test_nats_runs_jetstream_on_disk_with_room_for_every_stream_replica(
    files: list[str], servers: int
) -> None:
    values = values_files(*files)
    nats = values["nats"]
    assert nats["enabled"] is True
    cluster = nats["config"]["cluster"]
    assert (cluster["replicas"] if cluster["enabled"] else 1) == servers
    jetstream = nats["config"]["jetstream"]
    assert jetstream["enabled"] is True
    assert jetstream["fileStore"]["enabled"] is True
    assert jetstream["fileStore"]["pvc"]["enabled"] is True
    # Every server keeps a copy: as many stream replicas as servers.
    assert int(values["config"]["DEXEC_STREAM_REPLICAS"]) == servers


@pytest.mark.parametrize(
    ("release", "nats_values", "url"),
    [
        ("dexec", {}, "nats://dexec-nats:4222"),
        ("nats-prod", {}, "nats://nats-prod:4222"),
        ("dexec", {"fullnameOverride": "bus"}, "nats://bus:4222"),
    ],
)
def test_the_nats_url_names_the_service_of_the_nats_chart(
    release: str, nats_values: dict[str, str], url: str
) -> None:
    """The NATS chart names its Service like its fullname: <release>-nats, the release name if
    that already contains "nats", or nats.fullnameOverride."""
    values = {"database": {"url": DATABASE_URL}, "nats": nats_values}
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values, name=release, namespace="dexec")
    config = yaml.safe_load(rendered["dexec/templates/configmap.yaml"])
    assert config["data"]["DEXEC_NATS_URL"] == url


@pytest.mark.skipif(
    not nats_chart_vendored(),
    reason="the NATS chart is not vendored (no chart repository here); "
    "`helm dependency build charts/dexec` fetches it",
)
def test_with_the_vendored_nats_chart_a_three_server_cluster_is_rendered() -> None:
    rendered = render_objects({"database": {"url": DATABASE_URL}})
    for obj in rendered:
        validate(obj)
    index = by_kind_and_name(rendered)
    assert index[("StatefulSet", "dexec-nats")]["spec"]["replicas"] == 3
    ports = {p["port"] for p in index[("Service", "dexec-nats")]["spec"]["ports"]}
    assert 4222 in ports
