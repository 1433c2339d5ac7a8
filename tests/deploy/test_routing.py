"""How traffic reaches the services: the Ingress (with the ingress-nginx canary for WebSocket
upgrades on the order endpoint), the Gateway API HTTPRoute, and the ServiceMonitors."""

from __future__ import annotations

from tests.deploy.manifests import Manifest, by_kind_and_name
from tests.deploy.value_sets import objects

HOST = "dexec.example.com"


def public() -> dict[tuple[str, str], Manifest]:
    return by_kind_and_name(objects("public"))


def ingress_routes(ingress: Manifest) -> dict[tuple[str, str], str]:
    """(path, pathType) -> Service name, for the one host of an Ingress."""
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == HOST
    return {
        (path["path"], path["pathType"]): path["backend"]["service"]["name"]
        for path in rule["http"]["paths"]
    }


def test_ingress_sends_the_api_and_pages_to_the_api_and_websockets_to_the_notifier() -> None:
    ingress = public()[("Ingress", "dexec")]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "dexec-tls", "hosts": [HOST]}]
    assert ingress_routes(ingress) == {
        ("/ws", "Prefix"): "dexec-notifier",
        ("/api/orders/execute", "Exact"): "dexec-api",
        ("/api", "Prefix"): "dexec-api",
        ("/", "Prefix"): "dexec-api",
    }
    annotations = ingress["metadata"]["annotations"]
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt"
    # Idle WebSockets outlive ingress-nginx's default 60 s timeouts.
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600


def test_websocket_upgrades_on_the_order_endpoint_go_to_the_notifier() -> None:
    index = public()
    canary = index[("Ingress", "dexec-websocket-upgrade")]
    annotations = canary["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/canary"] == "true"
    assert annotations["nginx.ingress.kubernetes.io/canary-by-header"] == "Upgrade"
    assert annotations["nginx.ingress.kubernetes.io/canary-by-header-value"] == "websocket"
    routes = ingress_routes(canary)
    assert routes == {("/api/orders/execute", "Exact"): "dexec-notifier"}
    # ingress-nginx applies a canary only where the main Ingress has the same host and path.
    assert set(routes) <= set(ingress_routes(index[("Ingress", "dexec")]))


def test_ingress_backends_are_services_with_an_http_port() -> None:
    index = public()
    for name in ("dexec", "dexec-websocket-upgrade"):
        for path in index[("Ingress", name)]["spec"]["rules"][0]["http"]["paths"]:
            backend = path["backend"]["service"]
            service = index[("Service", backend["name"])]
            assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


def test_http_route_matches_the_upgrade_header_for_the_notifier() -> None:
    index = public()
    route = index[("HTTPRoute", "dexec")]["spec"]
    assert route["parentRefs"] == [{"name": "public", "namespace": "gateway-system"}]
    assert route["hostnames"] == [HOST]
    backends = {}
    for rule in route["rules"]:
        [backend] = rule["backendRefs"]
        service = index[("Service", backend["name"])]
        assert backend["port"] in {p["port"] for p in service["spec"]["ports"]}
        for match in rule["matches"]:
            headers = tuple((h["name"], h["value"]) for h in match.get("headers", []))
            backends[(match["path"]["type"], match["path"]["value"], headers)] = backend["name"]
    assert backends == {
        ("Exact", "/api/orders/execute", (("Upgrade", "websocket"),)): "dexec-notifier",
        ("PathPrefix", "/ws", ()): "dexec-notifier",
        ("PathPrefix", "/api", ()): "dexec-api",
        ("PathPrefix", "/", ()): "dexec-api",
    }


def test_no_ingress_route_or_monitor_unless_asked_for() -> None:
    kinds = {obj["kind"] for obj in objects("defaults")}
    assert kinds.isdisjoint({"Ingress", "HTTPRoute", "ServiceMonitor"})


def test_service_monitors_scrape_every_service_s_metrics_port() -> None:
    index = public()
    services = [obj for obj in index.values() if obj["kind"] == "Service"]
    monitors = [obj for obj in index.values() if obj["kind"] == "ServiceMonitor"]
    assert len(monitors) == 4
    for monitor in monitors:
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        selector = monitor["spec"]["selector"]["matchLabels"]
        [service] = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
        [endpoint] = monitor["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics"
        # The metrics' own `service` label (the dashboards select on it) is kept.
        assert endpoint["honorLabels"] is True
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert {m["metadata"]["name"] for m in monitors} == {
        f"dexec-{s}" for s in ("api", "router", "executor", "notifier")
    }
