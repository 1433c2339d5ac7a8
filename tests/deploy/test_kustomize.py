"""k8s/: the plain manifests (a kustomize base and a dev overlay) are valid and stay in step with
the chart: rendered with comparable values, the chart gives the same objects, and each has the
same spec (containers, ports, probes, env, security, scaling, routing, settings)."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from tests.deploy.manifests import (
    REPO,
    Manifest,
    by_kind_and_name,
    kustomize,
    main_container,
    merge,
    render_objects,
    secret_data,
    secret_refs,
    validate,
    values_files,
)

# The chart with what the base leaves outside: NATS and the Secrets. Chart-only extras are off:
# the helm test pod and the dashboards (kustomize cannot load files outside its directory).
CHART_ONLY_OFF = {"tests": {"enabled": False}, "grafanaDashboards": {"enabled": False}}
EXTERNAL_NATS = {"nats": {"enabled": False}, "externalNats": {"url": "nats://dexec-nats:4222"}}
COMPARABLE = {
    "base": merge(
        CHART_ONLY_OFF | EXTERNAL_NATS,
        {
            "database": {"existingSecret": "dexec-database"},
            "apiKeys": {"existingSecret": "dexec-api-keys"},
            "webhooks": {"existingSecret": "dexec-webhooks"},
            "ingress": {"enabled": True},
        },
    ),
    "overlays/dev": merge(
        values_files("values-dev.yaml"),
        CHART_ONLY_OFF | EXTERNAL_NATS | {"ingress": {"enabled": True}},
    ),
}
# The dev overlay's single NATS server stands in for the NATS chart, a dependency of ours.
OVERLAY_ONLY = {"overlays/dev": {("Service", "dexec-nats"), ("StatefulSet", "dexec-nats")}}
# Labels only Helm adds; kustomize adds part-of itself.
HELM_LABELS = {"helm.sh/chart", "app.kubernetes.io/version", "app.kubernetes.io/managed-by"}


def plain(directory: str) -> list[Manifest]:
    return kustomize(REPO / "k8s" / directory)


@pytest.mark.parametrize("directory", COMPARABLE)
def test_every_plain_manifest_is_valid_kubernetes(directory: str) -> None:
    rendered = plain(directory)
    assert rendered, f"k8s/{directory} renders nothing"
    for obj in rendered:
        validate(obj)


def comparable(obj: Manifest) -> dict[str, Any]:
    """The object without what only Helm adds, with Secret data decoded."""
    obj = copy.deepcopy(obj)
    metadata = obj["metadata"]
    result = {k: v for k, v in obj.items() if k not in ("metadata", "data", "stringData")}
    result["labels"] = {k: v for k, v in metadata.get("labels", {}).items() if k not in HELM_LABELS}
    result["annotations"] = metadata.get("annotations", {})
    if obj["kind"] == "Secret":
        encoded = {k: base64.b64decode(v).decode() for k, v in obj.get("data", {}).items()}
        result["data"] = encoded | obj.get("stringData", {})
    elif "data" in obj:
        result["data"] = obj["data"]
    template = result.get("spec", {}).get("template")
    if template:
        # Helm rolls pods on settings changes with a checksum; kubectl apply -k does not need it.
        template["metadata"].pop("annotations", None)
    return result


@pytest.mark.parametrize("directory", COMPARABLE)
def test_plain_manifests_match_the_chart(directory: str) -> None:
    ours = by_kind_and_name(plain(directory))
    chart = by_kind_and_name(render_objects(COMPARABLE[directory]))
    assert set(ours) - OVERLAY_ONLY.get(directory, set()) == set(chart)
    for key, obj in chart.items():
        assert comparable(ours[key]) == comparable(obj), f"{key} differs from the chart's"


@pytest.mark.parametrize("directory", COMPARABLE)
def test_the_notifier_takes_its_webhook_key_from_a_secret(directory: str) -> None:
    """The operator creates it for the base; the dev overlay makes one, so it runs on its own."""
    objects = by_kind_and_name(plain(directory))
    notifier = main_container(objects[("Deployment", "dexec-notifier")])
    ref = {"name": "dexec-webhooks", "key": "DEXEC_WEBHOOK_SECRET"}
    assert secret_refs(notifier)["DEXEC_WEBHOOK_SECRET"] == ref
    secret = objects.get(("Secret", "dexec-webhooks"))
    if directory == "base":
        assert secret is None
    else:
        assert secret_data(secret)["DEXEC_WEBHOOK_SECRET"]
