"""`dexec-executor`: run the executor until SIGINT/SIGTERM."""

from __future__ import annotations

from dexec.runtime import run_service
from dexec_executor.service import ExecutorService
from dexec_executor.settings import ExecutorSettings


def main() -> None:
    settings = ExecutorSettings()
    address = (settings.executor_metrics_host, settings.executor_metrics_port)
    run_service("executor", ExecutorService(settings), settings.log_level, address)


if __name__ == "__main__":
    main()
