"""`dexec-api`: serve until SIGINT/SIGTERM."""

from __future__ import annotations

from dexec.runtime import http_config, run_http
from dexec_api.app import create_app
from dexec_api.settings import ApiSettings


def main() -> None:
    settings = ApiSettings()
    app = create_app(settings)
    config = http_config(
        app,
        settings.api_host,
        settings.api_port,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    run_http("api", settings.log_level, config)


if __name__ == "__main__":
    main()
