"""charts/dexec rendered by Helm with each value set, every object valid for Kubernetes, and the
workloads wired as the services need: probes, locked-down containers, migrations first,
settings and Secrets where they are used, autoscaling."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import helm_python as helm
import pytest
import yaml

from dexec.auth import AuthSettings, hash_api_key
from dexec_api.settings import ApiSettings
from dexec_executor.settings import ExecutorSettings
from dexec_notifier.settings import DEVELOPMENT_WEBHOOK_SECRET, NotifierSettings
from dexec_router.settings import RouterSettings
from tests.deploy.manifests import (
    CHART,
    KUBERNETES_VERSION,
    NAMESPACE,
    Manifest,
    by_kind_and_name,
    containers,
    main_container,
    merge,
    nats_chart_vendored,
    render,
    render_objects,
    secret_data,
    secret_refs,
    validate,
)
from tests.deploy.value_sets import DATABASE_URL, VALUE_SETS, WEBHOOK_SECRET, objects

SERVICES = ("api", "router", "executor", "notifier")
HTTP_SERVICES = {"api": 8000, "notifier": 8001}
WORKER_SERVICES = {"router": 9101, "executor": 9102}
SETTINGS = {
    "api": ApiSettings,
    "router": RouterSettings,
    "executor": ExecutorSettings,
    "notifier": NotifierSettings,
}


def deployment(name: str, value_set: str) -> Manifest:
    return by_kind_and_name(objects(value_set))[("Deployment", f"dexec-{name}")]


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_helm_lint_finds_nothing_to_fix(value_set: str) -> None:
    report = helm.lint(
        CHART, VALUE_SETS[value_set], strict=True, kube_version=f"v{KUBERNETES_VERSION}.0"
    )
    findings = {message["error"] for message in report["messages"] if message["severity"] > 1}
    # Offline the NATS chart cannot be fetched (see test_nats_dependency.py).
    if not nats_chart_vendored():
        findings.discard("chart directory is missing these dependencies: nats")
    assert findings == set()


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_object_is_valid_kubernetes(value_set: str) -> None:
    rendered = objects(value_set)
    assert rendered
    for obj in rendered:
        try:
            validate(obj)
        except Exception as error:
            kind, name = obj["kind"], obj["metadata"]["name"]
            pytest.fail(f"{kind}/{name} is not valid for Kubernetes {KUBERNETES_VERSION}: {error}")


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_each_service_is_a_locked_down_deployment(value_set: str) -> None:
    index = by_kind_and_name(objects(value_set))
    for service in SERVICES:
        workload = index[("Deployment", f"dexec-{service}")]
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in containers(workload):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            # Tilt's live_update writes into the containers; everywhere else they are read-only.
            assert context["readOnlyRootFilesystem"] is (value_set != "tilt")
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert "memory" in container["resources"]["limits"]
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_no_pod_gets_service_link_variables(value_set: str) -> None:
    """Kubernetes would define DEXEC_API_PORT=tcp://... for the Service dexec-api, and so on:
    the very names of the services' settings."""
    ours = [
        o
        for o in objects(value_set)
        if o["metadata"]["labels"]["app.kubernetes.io/name"] == "dexec"
    ]
    for obj in (o for o in ours if o["kind"] in ("Deployment", "StatefulSet", "Pod")):
        pod = obj["spec"]["template"]["spec"] if obj["kind"] != "Pod" else obj["spec"]
        assert pod["enableServiceLinks"] is False, obj["metadata"]["name"]


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_probes_use_each_service_s_own_endpoints(value_set: str) -> None:
    for service in SERVICES:
        container = main_container(deployment(service, value_set))
        port = container["ports"][0]
        paths = {
            probe: container[probe]["httpGet"]["path"]
            for probe in ("startupProbe", "readinessProbe", "livenessProbe")
        }
        if service in HTTP_SERVICES:
            assert port == {
                "name": "http",
                "containerPort": HTTP_SERVICES[service],
                "protocol": "TCP",
            }
            assert paths == {
                "startupProbe": "/healthz",
                "readinessProbe": "/readyz",
                "livenessProbe": "/healthz",
            }
        else:
            assert port["name"] == "metrics"
            assert port["containerPort"] == WORKER_SERVICES[service]
            assert set(paths.values()) == {"/metrics"}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["port"] == port["name"]


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_services_clients_reach_keep_serving_while_their_endpoint_is_removed(
    value_set: str,
) -> None:
    """A preStop sleep on the api and notifier, shorter than the grace period; the workers
    take no connections and stop at once."""
    for service in SERVICES:
        pod = deployment(service, value_set)["spec"]["template"]["spec"]
        lifecycle = main_container(deployment(service, value_set)).get("lifecycle")
        if service in HTTP_SERVICES:
            sleep, seconds = lifecycle["preStop"]["exec"]["command"]
            assert sleep == "sleep"
            seconds = int(seconds)
            assert 0 < seconds < pod["terminationGracePeriodSeconds"], service
        else:
            assert lifecycle is None, service


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_services_listen_on_all_interfaces_on_their_port(value_set: str) -> None:
    ports = HTTP_SERVICES | WORKER_SERVICES
    for service in SERVICES:
        env = {
            e["name"]: e.get("value") for e in main_container(deployment(service, value_set))["env"]
        }
        prefix = f"DEXEC_{service.upper()}_" + ("" if service in HTTP_SERVICES else "METRICS_")
        assert env[prefix + "HOST"] == "0.0.0.0"
        assert env[prefix + "PORT"] == str(ports[service])


def settings_of(service: str) -> set[str]:
    return {f"DEXEC_{field.upper()}" for field in SETTINGS[service].model_fields}


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_setting_the_chart_sets_is_one_a_service_reads(value_set: str) -> None:
    """A misspelt variable would be ignored silently (the settings ignore unknown names)."""
    config = by_kind_and_name(objects(value_set))[("ConfigMap", "dexec-config")]
    # The ConfigMap is shared, so each of its settings is read by at least one service ...
    every_service = set().union(*(settings_of(service) for service in SERVICES))
    assert set(config["data"]) - every_service == set()
    # ... and what a container gets on its own is read by that service.
    for service in SERVICES:
        for container in containers(deployment(service, value_set)):
            own = {e["name"] for e in container["env"] if e["name"].startswith("DEXEC_")}
            assert own - settings_of(service) == set(), service


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_services_select_their_pods_on_named_ports(value_set: str) -> None:
    index = by_kind_and_name(objects(value_set))
    workloads = [obj for obj in index.values() if obj["kind"] in ("Deployment", "StatefulSet")]
    for service in (obj for obj in index.values() if obj["kind"] == "Service"):
        selector = service["spec"]["selector"]
        [target] = [
            w
            for w in workloads
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert target["spec"]["selector"]["matchLabels"] == selector
        named_ports = {p["name"] for c in containers(target) for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= named_ports


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_migrations_run_before_the_services_that_use_postgres(value_set: str) -> None:
    for service in SERVICES:
        workload = deployment(service, value_set)
        init = workload["spec"]["template"]["spec"].get("initContainers", [])
        uses_postgres = service in HTTP_SERVICES
        assert [c["name"] for c in init] == (["migrate"] if uses_postgres else [])
        env = {e["name"] for c in containers(workload) for e in c.get("env", [])}
        assert ("DEXEC_DATABASE_URL" in env) is uses_postgres
        if uses_postgres:
            [migrate] = init
            assert migrate["image"] == main_container(workload)["image"]
            assert "python -m dexec.db.migrate" in migrate["command"][-1]
            assert migrate["command"][:2] == ["sh", "-c"]


def test_autoscaled_services_leave_replicas_to_the_autoscaler() -> None:
    index = by_kind_and_name(objects("external"))
    for service in SERVICES:
        workload = index[("Deployment", f"dexec-{service}")]
        autoscaler = index.get(("HorizontalPodAutoscaler", f"dexec-{service}"))
        if service == "router":
            assert autoscaler is None
            assert workload["spec"]["replicas"] == 3
        else:
            assert "replicas" not in workload["spec"]
            assert autoscaler["spec"]["scaleTargetRef"] == {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": f"dexec-{service}",
            }
            assert autoscaler["spec"]["minReplicas"] >= 2
        budget = index[("PodDisruptionBudget", f"dexec-{service}")]
        assert budget["spec"]["selector"] == workload["spec"]["selector"]


def test_the_development_values_run_one_of_each_without_autoscaling() -> None:
    rendered = objects("dev")
    assert not [
        o for o in rendered if o["kind"] in ("HorizontalPodAutoscaler", "PodDisruptionBudget")
    ]
    for service in SERVICES:
        assert deployment(service, "dev")["spec"]["replicas"] == 1


def test_settings_point_at_nats_and_roll_the_pods_when_they_change() -> None:
    def config(value_set: str) -> dict[str, str]:
        return by_kind_and_name(objects(value_set))[("ConfigMap", "dexec-config")]["data"]

    assert config("defaults")["DEXEC_NATS_URL"] == "nats://dexec-nats:4222"
    assert config("defaults")["DEXEC_STREAM_REPLICAS"] == "3"
    assert config("dev")["DEXEC_STREAM_REPLICAS"] == "1"
    assert config("external")["DEXEC_NATS_URL"] == "nats://nats.messaging:4222"
    assert config("public")["DEXEC_PUBLIC_WS_URL"] == "wss://dexec.example.com"
    assert config("defaults")["DEXEC_PUBLIC_WS_URL"] == "ws://dexec-notifier:80"

    def checksum(value_set: str) -> str:
        annotations = deployment("api", value_set)["spec"]["template"]["metadata"]["annotations"]
        return annotations["checksum/config"]

    assert checksum("defaults") != checksum("dev")


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_webhooks_to_private_targets_are_refused(value_set: str) -> None:
    """Said explicitly in every cluster, as the services' default (no SSRF into the cluster)."""
    config = by_kind_and_name(objects(value_set))[("ConfigMap", "dexec-config")]["data"]
    assert config["DEXEC_WEBHOOK_ALLOW_PRIVATE_TARGETS"] == "false"
    assert NotifierSettings.model_fields["webhook_allow_private_targets"].default is False
    assert ApiSettings.model_fields["webhook_allow_private_targets"].default is False


def test_database_url_and_api_keys_are_secrets() -> None:
    index = by_kind_and_name(objects("public"))
    assert secret_data(index[("Secret", "dexec-database")]) == {"DEXEC_DATABASE_URL": DATABASE_URL}
    api_keys = secret_data(index[("Secret", "dexec-api-keys")])
    assert json.loads(api_keys["keys.json"]) == {"acme": "k-acme", "globex": "k-globex"}
    # The services get digests only, in the form dexec.auth reads.
    digests = json.loads(api_keys["DEXEC_API_KEYS"])
    assert digests == {"acme": hash_api_key("k-acme"), "globex": hash_api_key("k-globex")}
    assert AuthSettings(api_keys=digests).api_keys == digests

    generated = secret_data(by_kind_and_name(objects("defaults"))[("Secret", "dexec-api-keys")])
    [(tenant, key)] = json.loads(generated["keys.json"]).items()
    assert tenant == "default"
    assert len(key) == 40
    assert json.loads(generated["DEXEC_API_KEYS"]) == {"default": hash_api_key(key)}


def test_development_postgres_gets_the_password_of_the_url() -> None:
    index = by_kind_and_name(objects("dev"))
    data = secret_data(index[("Secret", "dexec-database")])
    assert data == {
        "POSTGRES_PASSWORD": "dexec",
        "DEXEC_DATABASE_URL": "postgresql+asyncpg://dexec:dexec@dexec-postgresql:5432/dexec",
    }
    postgres = index[("StatefulSet", "dexec-postgresql")]
    assert postgres["spec"]["replicas"] == 1
    env = {e["name"]: e for e in main_container(postgres)["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "dexec-database",
        "key": "POSTGRES_PASSWORD",
    }
    assert "dexec-api-keys" not in {name for kind, name in index if kind == "Secret"}


def test_existing_secrets_are_used_and_not_rendered() -> None:
    index = by_kind_and_name(objects("external"))
    assert not [name for kind, name in index if kind in ("Secret", "ServiceAccount")]
    for service in HTTP_SERVICES:
        pod = deployment(service, "external")["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "dexec-runner"
        refs = secret_refs(main_container(deployment(service, "external")))
        webhooks = {"DEXEC_WEBHOOK_SECRET": {"name": "webhook-signing", "key": "hmac-key"}}
        assert refs == {
            "DEXEC_DATABASE_URL": {"name": "pg-credentials", "key": "url"},
            "DEXEC_API_KEYS": {"name": "tenants", "key": "DEXEC_API_KEYS"},
        } | (webhooks if service == "notifier" else {})


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_only_the_notifier_gets_the_webhook_key_and_from_a_secret(value_set: str) -> None:
    """Without it the notifier would sign with the public development key."""
    notifier = main_container(deployment("notifier", value_set))
    ref = secret_refs(notifier)["DEXEC_WEBHOOK_SECRET"]
    given = VALUE_SETS[value_set].get("webhooks", {})
    if given.get("existingSecret"):
        assert ref == {"name": given["existingSecret"], "key": given["existingSecretKey"]}
    else:
        secret = by_kind_and_name(objects(value_set))[("Secret", ref["name"])]
        assert secret_data(secret)[ref["key"]]
    # Not the others, nor the notifier's migrations.
    for service in SERVICES:
        for container in containers(deployment(service, value_set)):
            names = {e["name"] for e in container.get("env", [])}
            signs = (service, container["name"]) == ("notifier", "notifier")
            assert ("DEXEC_WEBHOOK_SECRET" in names) is signs, (service, container["name"])


def test_the_webhook_key_given_is_in_the_secret_the_chart_makes() -> None:
    secret = by_kind_and_name(objects("public"))[("Secret", "dexec-webhooks")]
    assert secret_data(secret) == {"DEXEC_WEBHOOK_SECRET": WEBHOOK_SECRET}


def generated_webhook_key(values: dict[str, object], chart: Path = CHART) -> str:
    secret = by_kind_and_name(render_objects(values, chart=chart))[("Secret", "dexec-webhooks")]
    return secret_data(secret)["DEXEC_WEBHOOK_SECRET"]


def test_without_a_webhook_key_a_random_one_is_generated() -> None:
    key = generated_webhook_key(VALUE_SETS["defaults"])
    assert re.fullmatch(r"[A-Za-z0-9]{48}", key)
    assert key != DEVELOPMENT_WEBHOOK_SECRET
    # Without a cluster (helm template) there is no Secret to read back: every render makes a new
    # one, which is why values.yaml says to set it there.
    assert generated_webhook_key(VALUE_SETS["defaults"]) != key


def test_a_generated_webhook_key_is_kept_across_upgrades(tmp_path: Path) -> None:
    """On upgrade the chart reads the key back from its Secret. Offline `lookup` finds nothing,
    so a copy of the chart has it answer with such a Secret instead."""
    chart = tmp_path / "dexec"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("charts"))
    template = chart / "templates" / "secrets.yaml"
    lookup = 'lookup "v1" "Secret" .Release.Namespace $name'
    stored = base64.b64encode(b"key-from-install").decode()
    found = f'dict "data" (dict "DEXEC_WEBHOOK_SECRET" "{stored}")'
    assert lookup in template.read_text()
    template.write_text(template.read_text().replace(lookup, found))
    assert generated_webhook_key(VALUE_SETS["defaults"], chart) == "key-from-install"
    # A key given in values replaces it.
    rotated = merge(VALUE_SETS["defaults"], {"webhooks": {"secret": "rotated"}})
    assert generated_webhook_key(rotated, chart) == "rotated"


def test_a_new_webhook_key_rolls_the_notifier_only() -> None:
    def checksums(values: dict[str, object]) -> dict[str, str]:
        index = by_kind_and_name(render_objects(values))
        pods = {s: index[("Deployment", f"dexec-{s}")]["spec"]["template"] for s in SERVICES}
        return {s: pod["metadata"]["annotations"]["checksum/secrets"] for s, pod in pods.items()}

    before = checksums(VALUE_SETS["public"])
    after = checksums(merge(VALUE_SETS["public"], {"webhooks": {"secret": "rotated"}}))
    assert {service for service in SERVICES if before[service] != after[service]} == {"notifier"}


def test_per_service_settings_reach_only_that_service() -> None:
    env = {
        e["name"]: e.get("value") for e in main_container(deployment("executor", "external"))["env"]
    }
    assert env["DEXEC_EXECUTOR_CONCURRENCY"] == "256"
    router_env = {e["name"] for e in main_container(deployment("router", "external"))["env"]}
    assert "DEXEC_EXECUTOR_CONCURRENCY" not in router_env


def test_numbers_written_bare_reach_the_services_as_numbers_they_read() -> None:
    """A values file's numbers are floats to the templates: a large whole one must not come
    out as 1.6777216e+07, which no setting parses."""
    values = yaml.safe_load(
        """
        config: {DEXEC_STREAM_MAX_AGE_SECONDS: 2592000, DEXEC_RETRY_BACKOFF_BASE_SECONDS: 0.5}
        notifier: {env: {DEXEC_WS_BACKFILL_CACHE_BYTES: 16777216}}
        """
    )
    values["database"] = {"url": DATABASE_URL}
    index = by_kind_and_name(render_objects(values))
    config = index[("ConfigMap", "dexec-config")]["data"]
    notifier = main_container(index[("Deployment", "dexec-notifier")])
    env = {e["name"]: e.get("value") for e in notifier["env"]}

    assert config["DEXEC_STREAM_MAX_AGE_SECONDS"] == "2592000"
    assert config["DEXEC_RETRY_BACKOFF_BASE_SECONDS"] == "0.5"
    assert env["DEXEC_WS_BACKFILL_CACHE_BYTES"] == "16777216"
    settings = NotifierSettings.model_validate(
        {k.removeprefix("DEXEC_").lower(): v for k, v in {**config, **env}.items() if v}
    )
    assert settings.stream_max_age_seconds == 2_592_000
    assert settings.ws_backfill_cache_bytes == 16_777_216


def test_images_come_from_the_registry_with_one_tag() -> None:
    images = {main_container(deployment(s, "public"))["image"] for s in SERVICES}
    assert images == {f"ghcr.io/acme/dexec-{s}:1.2.3" for s in SERVICES}
    assert main_container(deployment("api", "defaults"))["image"] == "dexec-api:0.1.0"


def test_the_helm_test_pod_runs_the_smoke_script_from_the_chart() -> None:
    index = by_kind_and_name(objects("defaults"))
    pod = index[("Pod", "dexec-smoke-test")]
    script = index[("ConfigMap", "dexec-smoke-test")]
    for hook in (pod, script):
        assert hook["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert script["data"]["smoke.py"] == (CHART / "files" / "smoke.py").read_text().rstrip("\n")
    [container] = pod["spec"]["containers"]
    assert container["image"] == main_container(deployment("api", "defaults"))["image"]
    assert container["command"] == ["python", "/smoke/smoke.py"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["API_URL"] == "http://dexec-api:80"
    assert env["NOTIFIER_URL"] == "ws://dexec-notifier:80"
    assert "API_KEYS" in env
    assert not [o for o in objects("tilt") if o["kind"] == "Pod"]


def test_dashboards_become_configmaps_for_the_grafana_sidecar(tmp_path: Path) -> None:
    chart = tmp_path / "dexec"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("charts"))
    for dashboard in chart.glob("dashboards/*.json"):
        dashboard.unlink()
    overview = {"title": "dexec overview", "panels": []}
    (chart / "dashboards" / "Overview_Main.json").write_text(json.dumps(overview))
    (chart / "dashboards" / "router.json").write_text(json.dumps({"title": "router"}))

    rendered = render_objects({"database": {"url": DATABASE_URL}}, chart=chart)
    dashboards = {
        o["metadata"]["name"]: o
        for o in rendered
        if o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    }
    assert set(dashboards) == {"dexec-dashboard-overview-main", "dexec-dashboard-router"}
    data = dashboards["dexec-dashboard-overview-main"]["data"]
    assert json.loads(data["Overview_Main.json"]) == overview
    for dashboard in dashboards.values():
        validate(dashboard)

    disabled = {"database": {"url": DATABASE_URL}, "grafanaDashboards": {"enabled": False}}
    assert not [
        o for o in render_objects(disabled, chart=chart) if "dashboard" in o["metadata"]["name"]
    ]


def test_notes_tell_how_to_reach_and_test_the_release() -> None:
    notes = render(VALUE_SETS["defaults"])["dexec/templates/NOTES.txt"]
    assert f"kubectl -n {NAMESPACE} port-forward svc/dexec-api 8000:80" in notes
    assert f"helm test -n {NAMESPACE} dexec" in notes
    assert "dexec-api-keys" in notes
    webhook_key = "get secret dexec-webhooks -o jsonpath='{.data.DEXEC_WEBHOOK_SECRET}'"
    assert webhook_key in notes
    public = render(VALUE_SETS["public"])["dexec/templates/NOTES.txt"]
    assert "https://dexec.example.com/api/orders" in public
    assert "wss://dexec.example.com/ws/orders/<orderId>" in public
