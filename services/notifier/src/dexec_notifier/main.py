"""`dexec-notifier`: serve until SIGINT/SIGTERM."""

from __future__ import annotations

from dexec.runtime import run_http
from dexec_notifier.app import create_app
from dexec_notifier.settings import NotifierSettings


def main() -> None:
    settings = NotifierSettings()
    app = create_app(settings)
    run_http(
        "notifier",
        app,
        settings.notifier_host,
        settings.notifier_port,
        settings.log_level,
        settings.ws_ping_interval_seconds,
    )


if __name__ == "__main__":
    main()
