"""`dexec-api`: serve until SIGINT/SIGTERM."""

from __future__ import annotations

from dexec.runtime import run_http
from dexec_api.app import create_app
from dexec_api.settings import ApiSettings


def main() -> None:
    settings = ApiSettings()
    app = create_app(settings)
    run_http("api", app, settings.api_host, settings.api_port, settings.log_level)


if __name__ == "__main__":
    main()
