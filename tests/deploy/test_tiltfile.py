"""The Tiltfile, evaluated against checking stubs of Tilt's builtins (tests/deploy/tilt.py): it
builds the four images with live_update, deploys the chart with the dev values, forwards the
api, notifier, Grafana and Prometheus ports, and groups every resource under a label."""

from __future__ import annotations

from functools import cache

import yaml

from tests.deploy.manifests import CHART, REPO
from tests.deploy.tilt import FallBackOn, Sync, Tilt

SERVICES = ("api", "router", "executor", "notifier")


@cache
def tilt() -> Tilt:
    evaluated = Tilt(REPO)
    evaluated.evaluate(REPO / "Tiltfile")
    return evaluated


def test_the_four_images_are_built_from_their_dockerfiles_for_the_deployed_workloads() -> None:
    images = tilt().images
    assert set(images) == {f"dexec-{service}" for service in SERVICES}
    deployed = {
        container["image"].rsplit(":", 1)[0]
        for obj in tilt().objects
        if obj["kind"] == "Deployment"
        for container in obj["spec"]["template"]["spec"]["containers"]
    }
    assert deployed == set(images)
    for ref, image in images.items():
        entry = image.dockerfile.stages[-1].all("ENTRYPOINT")[-1].arguments
        assert ref in entry


def test_live_update_syncs_the_code_the_reloader_watches() -> None:
    values = yaml.safe_load((CHART / "values-tilt.yaml").read_text())
    for service in SERVICES:
        image = tilt().images[f"dexec-{service}"]
        python = image.dockerfile.resolve(image.dockerfile.stages[-1].base)
        version = python.split(":")[1].split("-")[0]  # python:3.11-slim-bookworm -> 3.11
        syncs = [step for step in image.live_update if isinstance(step, Sync)]
        assert {s.local_path for s in syncs} == {
            "libs/dexec/src/dexec",
            f"services/{service}/src/dexec_{service}",
        }
        remote = {s.remote_path for s in syncs}
        for path in remote:
            assert path.startswith(f"/app/.venv/lib/python{version}/site-packages/")
        # values-tilt.yaml runs the service under watchfiles over exactly those directories.
        command = values[service]["command"]
        assert command[0] == "watchfiles"
        assert command[command.index(f"dexec-{service}") + 1 :] == sorted(remote)
        # The code is owned by the service's user so the sync can write it.
        assert image.build_args == {"VENV_OWNER": "10001"}


def test_dependency_and_migration_changes_rebuild_the_image() -> None:
    for image in tilt().images.values():
        [fall_back] = [step for step in image.live_update if isinstance(step, FallBackOn)]
        assert {"uv.lock", "pyproject.toml", "libs/dexec/src/dexec/db/migrations"} <= set(
            fall_back.files
        )


def test_the_chart_is_deployed_with_the_development_values() -> None:
    [release] = tilt().helm_releases
    assert release == {
        "chart": "charts/dexec",
        "name": "dexec",
        "values": ["charts/dexec/values-dev.yaml", "charts/dexec/values-tilt.yaml"],
    }
    # Tilt's helm() needs the NATS chart in charts/dexec/charts; the Tiltfile fetches it once.
    if not (CHART / "charts").exists():
        assert tilt().local_commands == ["helm dependency build charts/dexec"]


def test_api_notifier_grafana_and_prometheus_are_forwarded() -> None:
    resources = tilt().resources
    assert [(f.local_port, f.container_port) for f in resources["api"].port_forwards] == [
        (8000, 8000)
    ]
    assert [(f.local_port, f.container_port) for f in resources["notifier"].port_forwards] == [
        (8001, 8001)
    ]
    assert "svc/monitoring-grafana 3000:80" in resources["grafana"].serve_cmd
    assert "svc/monitoring-prometheus 9090:9090" in resources["prometheus"].serve_cmd


def test_every_resource_is_grouped_under_a_label() -> None:
    groups = {name: resource.labels for name, resource in tilt().resources.items()}
    assert all(groups.values()), groups
    assert {name for name, labels in groups.items() if "dexec" in labels} == set(SERVICES)
    assert {name for name, labels in groups.items() if "infra" in labels} == {"postgresql", "nats"}


def test_service_monitors_wait_for_the_monitoring_stack_that_defines_them() -> None:
    resource = tilt().resources["service-monitors"]
    assert resource.resource_deps == ["monitoring"]
    assert {o["kind"] for o in tilt().objects if o["kind"] == "ServiceMonitor"} == {
        "ServiceMonitor"
    }


def test_the_api_hands_out_websocket_links_the_developer_s_browser_can_open() -> None:
    """Where the Tiltfile forwards the notifier, not the in-cluster Service name."""
    [config] = [
        o
        for o in tilt().objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "dexec-config"
    ]
    assert config["data"]["DEXEC_PUBLIC_WS_URL"] == "ws://localhost:8001"
