"""The values the chart is rendered with in the tests: each turns on a different part of it."""

from __future__ import annotations

from functools import cache
from typing import Any

from tests.deploy.manifests import Manifest, render_objects, values_files

DATABASE_URL = "postgresql+asyncpg://dexec:secret@postgres.example:5432/dexec"
WEBHOOK_SECRET = "whsec-acme-4f9b1c"

VALUE_SETS: dict[str, dict[str, Any]] = {
    # What `helm install` with only a database URL deploys: NATS from the dependency (absent
    # offline, see test_nats_dependency.py), 2-10 replicas of each service, API keys and the
    # webhook key generated.
    "defaults": {"database": {"url": DATABASE_URL}},
    # A development cluster, and what `tilt up` deploys.
    "dev": values_files("values-dev.yaml"),
    "tilt": values_files("values-dev.yaml", "values-tilt.yaml"),
    # Exposed to the internet: Ingress with TLS, Gateway API route, Prometheus operator.
    "public": {
        "database": {"url": DATABASE_URL},
        "image": {"registry": "ghcr.io/acme/", "tag": "1.2.3"},
        "apiKeys": {"keys": {"acme": "k-acme", "globex": "k-globex"}},
        "webhooks": {"secret": WEBHOOK_SECRET},
        "ingress": {
            "enabled": True,
            "host": "dexec.example.com",
            "tls": {"enabled": True, "secretName": "dexec-tls"},
            "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
        },
        "httpRoute": {
            "enabled": True,
            "parentRefs": [{"name": "public", "namespace": "gateway-system"}],
            "hostnames": ["dexec.example.com"],
        },
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    },
    # Everything external or pre-existing: NATS, the database, API-key and webhook-key Secrets,
    # the ServiceAccount; one service with a fixed replica count.
    "external": {
        "nats": {"enabled": False},
        "externalNats": {"url": "nats://nats.messaging:4222"},
        "database": {"existingSecret": "pg-credentials", "existingSecretKey": "url"},
        "apiKeys": {"existingSecret": "tenants"},
        "webhooks": {"existingSecret": "webhook-signing", "existingSecretKey": "hmac-key"},
        "serviceAccount": {"create": False, "name": "dexec-runner"},
        "router": {"autoscaling": {"enabled": False}, "replicaCount": 3},
        "executor": {"env": {"DEXEC_EXECUTOR_CONCURRENCY": 256}},
    },
}


@cache
def objects(name: str) -> list[Manifest]:
    """The rendered objects of a value set (shared: do not modify them)."""
    return render_objects(VALUE_SETS[name])
