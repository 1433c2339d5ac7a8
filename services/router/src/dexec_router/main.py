"""`dexec-router`: run the router until SIGINT/SIGTERM."""

from __future__ import annotations

from dexec.runtime import run_service
from dexec_router.service import RouterService
from dexec_router.settings import RouterSettings


def main() -> None:
    settings = RouterSettings()
    address = (settings.router_metrics_host, settings.router_metrics_port)
    run_service("router", RouterService(settings), settings.log_level, address)


if __name__ == "__main__":
    main()
