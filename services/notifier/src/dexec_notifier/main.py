"""`dexec-notifier`: serve until SIGINT/SIGTERM."""

from __future__ import annotations

from dexec.runtime import http_config, run_http
from dexec_notifier.app import create_app
from dexec_notifier.settings import NotifierSettings


def main() -> None:
    settings = NotifierSettings()
    app = create_app(settings)
    config = http_config(
        app,
        settings.notifier_host,
        settings.notifier_port,
        ws_ping_interval=settings.ws_ping_interval_seconds,
    )
    run_http("notifier", settings.log_level, config)


if __name__ == "__main__":
    main()
