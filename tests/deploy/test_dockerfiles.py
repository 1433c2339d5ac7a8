"""services/*/Dockerfile, checked without a Docker engine: each builds its service from the uv
workspace in a build stage and runs it as a non-root user on a read-only root filesystem."""

from __future__ import annotations

import fnmatch
import json
import shlex
import tomllib

import pytest

from tests.deploy import dockerfiles
from tests.deploy.manifests import REPO

SERVICES = ("api", "router", "executor", "notifier")
# Where each service listens (the chart's container ports) and the setting that opens it up.
LISTEN = {
    "api": (8000, "DEXEC_API_HOST"),
    "notifier": (8001, "DEXEC_NOTIFIER_HOST"),
    "router": (9101, "DEXEC_ROUTER_METRICS_HOST"),
    "executor": (9102, "DEXEC_EXECUTOR_METRICS_HOST"),
}


def dockerfile(service: str) -> dockerfiles.Dockerfile:
    return dockerfiles.parse(REPO / "services" / service / "Dockerfile")


def env(stage: dockerfiles.Stage) -> dict[str, str]:
    pairs = [word.split("=", 1) for i in stage.all("ENV") for word in shlex.split(i.arguments)]
    return dict(pairs)


def workspace_members() -> list[str]:
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = root["tool"]["uv"]["workspace"]["members"]
    return sorted(
        str(path.parent.relative_to(REPO))
        for pattern in patterns
        for path in REPO.glob(f"{pattern}/pyproject.toml")
    )


def in_build_context(path: str) -> bool:
    """Whether .dockerignore lets `path` into the context: as Docker does, a pattern matches
    the path or one of its parents, and the last pattern that matches decides."""
    included = True
    for line in (REPO / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.removeprefix("!")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            included = negated
    return included


@pytest.mark.parametrize("service", SERVICES)
def test_copies_only_files_that_exist_in_the_build_context(service: str) -> None:
    sources = dockerfiles.copy_sources(dockerfile(service))
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such file"
        assert in_build_context(source), f"COPY {source}: excluded by .dockerignore"
    # uv reads the whole workspace even to install one member.
    assert {f"{member}/pyproject.toml" for member in workspace_members()} <= set(sources)
    assert {"pyproject.toml", "uv.lock"} <= set(sources)


def test_the_build_context_leaves_out_everything_else() -> None:
    for path in (".venv", ".git", ".dexec", "tests", "charts", "tools/src", "README.md"):
        assert not in_build_context(path), path
    assert not in_build_context("libs/dexec/src/dexec/__pycache__")


@pytest.mark.parametrize("service", SERVICES)
def test_builds_the_locked_service_in_a_separate_stage(service: str) -> None:
    parsed = dockerfile(service)
    build = next(s for s in parsed.stages if s.name == "build")
    runtime = parsed.stages[-1]
    # Same Python in both: the virtualenv's interpreter is a link into the base image.
    assert build.base == runtime.base
    assert parsed.resolve(runtime.base).startswith("python:3.11-slim")
    syncs = [r.arguments for r in build.all("RUN") if "uv sync" in r.arguments]
    assert len(syncs) == 2  # dependencies first (cached layer), then the code
    for sync in syncs:
        words = sync.split()
        assert "--frozen" in words and "--no-dev" in words
        assert words[words.index("--package") + 1] == f"dexec-{service}"
    assert "--no-install-workspace" in syncs[0]
    assert "--no-editable" in syncs[1]
    # The runtime stage takes only the virtualenv from the build.
    [venv] = [c for c in runtime.all("COPY") if c.flags.get("from") == "build"]
    assert venv.words() == ["/app/.venv", "/app/.venv"]
    assert not [c for c in runtime.all("COPY") if "from" not in c.flags]


@pytest.mark.parametrize("service", SERVICES)
def test_runs_the_service_s_console_script_as_a_non_root_user(service: str) -> None:
    runtime = dockerfile(service).stages[-1]
    user = runtime.all("USER")[-1].arguments
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {user}: not a non-root uid"
    # A numeric uid lets Kubernetes check runAsNonRoot; the chart runs as the same one.
    assert uid == "10001"
    entrypoint = json.loads(runtime.all("ENTRYPOINT")[-1].arguments)
    project = tomllib.loads((REPO / "services" / service / "pyproject.toml").read_text())
    assert entrypoint == [f"dexec-{service}"]
    assert entrypoint[0] in project["project"]["scripts"]


@pytest.mark.parametrize("service", SERVICES)
def test_works_with_a_read_only_root_filesystem(service: str) -> None:
    parsed = dockerfile(service)
    build = next(s for s in parsed.stages if s.name == "build")
    # Bytecode is compiled at build time, and Python never tries to write it at run time.
    assert env(build)["UV_COMPILE_BYTECODE"] == "1"
    runtime_env = env(parsed.stages[-1])
    assert runtime_env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert runtime_env["HOME"] == "/tmp"
    assert runtime_env["PATH"].startswith("/app/.venv/bin:")


@pytest.mark.parametrize("service", SERVICES)
def test_listens_on_all_interfaces_on_the_chart_s_port(service: str) -> None:
    runtime = dockerfile(service).stages[-1]
    port, host_setting = LISTEN[service]
    assert runtime.all("EXPOSE")[-1].arguments == str(port)
    assert env(runtime)[host_setting] == "0.0.0.0"
