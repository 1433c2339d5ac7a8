"""The history-read benchmark runs against a real NATS server and reports every read."""

from __future__ import annotations

import re

import pytest

from dexec_tools.bench_history import run

ROW = re.compile(
    r"^\| 3,000 \| (wildcard|history|latest) \| (recent|any) \| ([\d.]+) ms \| ([\d.]+) ms \|$"
)


async def test_reports_server_cpu_and_wall_time_for_each_read(
    capsys: pytest.CaptureFixture[str],
) -> None:
    await run([500], reads=5)
    rows = [ROW.match(line) for line in capsys.readouterr().out.splitlines()[2:]]
    assert all(rows), rows
    assert {(m[1], m[2]) for m in rows if m} == {
        (read, which) for read in ("wildcard", "history", "latest") for which in ("recent", "any")
    }
    assert all(float(m[4]) > 0 for m in rows if m)
