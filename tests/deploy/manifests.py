"""Rendering and validating the chart and the plain manifests, offline.

The chart is rendered by Helm itself: helm-python-sdk binds Helm's Go SDK (engine, values
coalescing, values.schema.json) through ctypes, so no helm binary, cluster or network is
involved. Every object is validated with kubernetes-validate in strict mode (unknown fields are
errors); the two custom resources the chart can render are validated against the schemas in
schemas/ instead, since kubernetes-validate ships only the built-in kinds.
"""

from __future__ import annotations

import base64
import copy
import json
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "dexec"
RELEASE = "dexec"
NAMESPACE = "dexec"
# The newest Kubernetes that kubernetes-validate 1.37 has schemas for.
KUBERNETES_VERSION = "1.37"

SCHEMAS = Path(__file__).parent / "schemas"
CUSTOM_RESOURCE_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproute-gateway-v1.json",
}

Manifest = dict[str, Any]


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of values files: maps merge key by key, anything else is replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def nats_chart_vendored() -> bool:
    """Whether `helm dependency build` has put the NATS chart in charts/ (it needs the network)."""
    return any((CHART / "charts").glob("nats-*.tgz"))


def values_files(*names: str, chart: Path = CHART) -> dict[str, Any]:
    """Values files (e.g. values-dev.yaml) merged in order, as `helm -f a -f b` does."""
    values: dict[str, Any] = {}
    for name in names:
        values = merge(values, yaml.safe_load((chart / name).read_text()))
    return values


def render(
    values: dict[str, Any] | None = None, chart: Path = CHART, release: str = RELEASE
) -> dict[str, str]:
    """`helm template`: each template's path (e.g. dexec/templates/NOTES.txt) and its output."""
    with helm.Chart.load(chart) as loaded:
        return loaded.render(values or {}, name=release, namespace=NAMESPACE)


def parse(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render_objects(
    values: dict[str, Any] | None = None, chart: Path = CHART, release: str = RELEASE
) -> list[Manifest]:
    rendered = render(values, chart, release)
    return [obj for path, text in rendered.items() if path.endswith(".yaml") for obj in parse(text)]


def kustomize(directory: Path) -> list[Manifest]:
    """`kubectl kustomize`: kubectl's built-in kustomize (v5 in kubectl 1.32)."""
    # Debian's kubernetes-client is kubectl 1.20, whose kustomize predates `labels` and `patches`.
    assert shutil.which("kubectl"), "kubectl 1.27 or newer is needed to render k8s/"
    result = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return parse(result.stdout)


@cache
def _custom_resource_validator(file: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((SCHEMAS / file).read_text()))


def validate(obj: Manifest) -> None:
    """Raise if the object is not valid for KUBERNETES_VERSION (unknown fields included)."""
    schema = CUSTOM_RESOURCE_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
    if schema:
        _custom_resource_validator(schema).validate(obj)
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def by_kind_and_name(objects: list[Manifest]) -> dict[tuple[str, str], Manifest]:
    index = {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}
    assert len(index) == len(objects), "two objects share a kind and name"
    return index


def containers(workload: Manifest) -> list[Manifest]:
    pod = (
        workload["spec"]["template"]["spec"] if "template" in workload["spec"] else workload["spec"]
    )
    return pod.get("initContainers", []) + pod["containers"]


def main_container(workload: Manifest) -> Manifest:
    return workload["spec"]["template"]["spec"]["containers"][0]


def secret_refs(container: Manifest) -> dict[str, dict[str, str]]:
    """The container's variables taken from Secrets: name -> secretKeyRef."""
    return {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def secret_data(secret: Manifest) -> dict[str, str]:
    if "stringData" in secret:
        return secret["stringData"]
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
