"""The Tiltfile evaluated by a real Starlark interpreter (starlark-rust, through starlark-pyo3)
against stubs of Tilt's builtins.

Each stub takes the parameters Tilt's own takes (tilt-dev/tilt internal/tiltfile/api), checks
its arguments the way Tilt would when `tilt up` loads the file (paths exist, the Dockerfile and
the chart are there, live_update steps are in order and inside the build's files, object
selectors match exactly one object) and records what was asked for. `helm` renders the chart
for real, with the same values files, so resources can be checked against the objects.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import starlark
import yaml

from tests.deploy import dockerfiles
from tests.deploy.manifests import REPO, Manifest, merge, parse, render_objects

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "Pod"}
# Tilt: "must start and end with an alphanumeric character, can include _, - and ., 63 at most".
LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Sync:
    local_path: str
    remote_path: str


@dataclass(frozen=True)
class FallBackOn:
    files: tuple[str, ...]


@dataclass(frozen=True)
class Run:
    command: str | tuple[str, ...]


@dataclass(frozen=True)
class PortForward:
    local_port: int
    container_port: int | None


@dataclass(frozen=True)
class Link:
    url: str
    name: str


@dataclass
class Image:
    dockerfile: dockerfiles.Dockerfile
    build_args: dict[str, str]
    only: list[str]
    live_update: list[Any]


@dataclass
class Resource:
    labels: list[str]
    resource_deps: list[str]
    port_forwards: list[PortForward] = field(default_factory=list)
    serve_cmd: str = ""
    workload: Manifest | None = None


def _starlark_callable(function: Callable[..., Any]) -> Callable[..., Any]:
    """Return Tilt's values (steps, port forwards, links) to Starlark as opaque objects."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        return starlark.OpaquePythonObject(result) if dataclasses.is_dataclass(result) else result

    return wrapper


def _listed(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


class Tilt:
    """What a Tiltfile asked Tilt for, checked on the way."""

    def __init__(self, root: Path = REPO) -> None:
        self.root = root
        self.images: dict[str, Image] = {}
        self.objects: list[Manifest] = []
        self.resources: dict[str, Resource] = {}
        self.helm_releases: list[dict[str, Any]] = []
        self.helm_repos: dict[str, str] = {}
        self.local_commands: list[str] = []
        # Workloads of chart dependencies that are not vendored: Tilt would render them, we can't.
        self.unrendered_workloads: set[str] = set()

    def existing(self, path: str) -> Path:
        resolved = self.root / path
        assert resolved.exists(), f"{path} does not exist"
        return resolved

    # --- live_update steps

    def sync(self, local_path: str, remote_path: str) -> Sync:
        self.existing(local_path)
        assert remote_path.startswith("/"), f"sync to a relative path: {remote_path}"
        return Sync(local_path, remote_path)

    def fall_back_on(self, files: str | list[str]) -> FallBackOn:
        for file in _listed(files):
            self.existing(file)
        return FallBackOn(tuple(_listed(files)))

    def run(
        self, cmd: str | list[str], trigger: str | list[str] = (), echo_off: bool = False
    ) -> Run:
        return Run(cmd if isinstance(cmd, str) else tuple(cmd))

    # --- images

    def docker_build(
        self,
        ref: str,
        context: str,
        build_args: dict[str, str] | None = None,
        dockerfile: str = "Dockerfile",
        dockerfile_contents: str = "",
        live_update: list[Any] = (),
        match_in_env_vars: bool = False,
        ignore: str | list[str] = (),
        only: str | list[str] = (),
        entrypoint: str | list[str] = (),
        target: str = "",
        ssh: str | list[str] = "",
        network: str = "",
        secret: str | list[str] = "",
        extra_tag: str | list[str] = "",
        container_args: list[str] | None = None,
        cache_from: str | list[str] = (),
        pull: bool = False,
        platform: str = "",
        extra_hosts: str | list[str] = (),
    ) -> None:
        assert ref not in self.images, f"{ref} is built twice"
        context_dir = self.existing(context)
        parsed = dockerfiles.parse(self.existing(dockerfile))
        build_args = build_args or {}
        assert set(build_args) <= parsed.args(), f"{ref}: build_args the Dockerfile lacks"
        assert not target or target in {s.name for s in parsed.stages}
        only = _listed(only)
        for path in only:
            assert (context_dir / path).exists(), f"{ref}: only={path} does not exist"

        def in_only(path: str) -> bool:
            return not only or any(path == o or path.startswith(o.rstrip("/") + "/") for o in only)

        for source in dockerfiles.copy_sources(parsed):
            assert in_only(source), f"{ref}: COPY {source} is not in only="
        steps = list(live_update)
        fall_backs = [step for step in steps if isinstance(step, FallBackOn)]
        assert steps[: len(fall_backs)] == fall_backs, f"{ref}: fall_back_on must come first"
        first_run = next((i for i, step in enumerate(steps) if isinstance(step, Run)), len(steps))
        assert not any(isinstance(s, Sync) for s in steps[first_run:]), "sync after run"
        for step in steps:
            paths = (
                step.files if isinstance(step, FallBackOn) else (getattr(step, "local_path", ""),)
            )
            for path in filter(None, paths):
                assert in_only(path), f"{ref}: live_update watches {path}, outside only="
        self.images[ref] = Image(parsed, build_args, only, steps)

    # --- Kubernetes objects and resources

    def helm(
        self,
        pathToChartDir: str,
        name: str = "",
        namespace: str = "",
        values: str | list[str] = (),
        set: str | list[str] = (),
        kube_version: str = "",
        skip_crds: bool = False,
    ) -> str:
        chart = self.existing(pathToChartDir)
        self.existing(os.path.join(pathToChartDir, "Chart.yaml"))
        assert not _listed(set), "the stub renders values files only"
        merged: dict[str, Any] = {}
        for file in _listed(values):
            merged = merge(merged, yaml.safe_load(self.existing(file).read_text()))
        rendered = render_objects(merged, chart, release=name)
        for dependency in helm.dependency_list(chart):
            if dependency["status"] == "missing":
                self.unrendered_workloads.add(f"{name}-{dependency['name']}")
        self.helm_releases.append(
            {"chart": pathToChartDir, "name": name, "values": _listed(values)}
        )
        return yaml.safe_dump_all(rendered)

    def k8s_yaml(self, yaml: str | list[str], allow_duplicates: bool = False) -> None:
        assert isinstance(yaml, str), "the stub takes rendered YAML (a Blob)"
        self.objects += parse(yaml)

    def workload(self, name: str) -> Manifest | None:
        found = [
            o for o in self.objects if o["kind"] in WORKLOAD_KINDS and o["metadata"]["name"] == name
        ]
        assert found or name in self.unrendered_workloads, f"no workload {name}"
        return found[0] if found else None

    def select(self, selector: str) -> Manifest:
        name, _, kind = selector.partition(":")
        found = [
            o
            for o in self.objects
            if o["metadata"]["name"] == name and (not kind or o["kind"].lower() == kind.lower())
        ]
        assert len(found) == 1, f"object selector {selector} matches {len(found)} objects"
        return found[0]

    def register(self, name: str, resource: Resource) -> None:
        assert name not in self.resources, f"resource {name} is defined twice"
        for label in resource.labels:
            assert LABEL.match(label), f"{name}: invalid label {label}"
        self.resources[name] = resource

    def k8s_resource(
        self,
        workload: str = "",
        new_name: str = "",
        port_forwards: Any = (),
        extra_pod_selectors: Any = (),
        trigger_mode: Any = None,
        resource_deps: list[str] = (),
        objects: list[str] = (),
        auto_init: bool = True,
        pod_readiness: str = "",
        links: Any = (),
        labels: str | list[str] = (),
        discovery_strategy: str = "",
    ) -> None:
        assert workload or (new_name and objects), (
            "k8s_resource needs a workload or new_name+objects"
        )
        found = self.workload(workload) if workload else None
        for selector in objects:
            self.select(selector)
        forwards = [
            p if isinstance(p, PortForward) else PortForward(int(p), None) for p in port_forwards
        ]
        if found and forwards:
            ports = {
                p["containerPort"]
                for c in found["spec"]["template"]["spec"]["containers"]
                for p in c.get("ports", [])
            }
            for forward in forwards:
                assert (forward.container_port or forward.local_port) in ports, (
                    f"{workload}: {forward}"
                )
        resource = Resource(_listed(labels), list(resource_deps), forwards, workload=found)
        self.register(new_name or workload, resource)

    def port_forward(
        self,
        local_port: int,
        container_port: int | None = None,
        name: str | None = None,
        link_path: str | None = None,
        host: str | None = None,
    ) -> PortForward:
        assert link_path is None or link_path.startswith("/")
        return PortForward(local_port, container_port)

    def link(self, url: str, name: str = "") -> Link:
        assert url.startswith(("http://", "https://")), url
        return Link(url, name)

    # --- local commands

    def local(
        self,
        command: str | list[str],
        quiet: bool = False,
        command_bat: str | list[str] = "",
        echo_off: bool = False,
        env: dict[str, str] | None = None,
        dir: str = "",
        stdin: str | None = None,
    ) -> str:
        self.local_commands.append(command if isinstance(command, str) else " ".join(command))
        return ""

    def local_resource(
        self,
        name: str,
        cmd: str | list[str] = "",
        deps: str | list[str] | None = None,
        trigger_mode: Any = None,
        resource_deps: list[str] = (),
        ignore: str | list[str] = (),
        auto_init: bool = True,
        serve_cmd: str | list[str] = "",
        cmd_bat: str | list[str] = "",
        serve_cmd_bat: str | list[str] = "",
        allow_parallel: bool = False,
        links: Any = (),
        labels: str | list[str] = (),
        env: dict[str, str] | None = None,
        serve_env: dict[str, str] | None = None,
        readiness_probe: Any = None,
        dir: str = "",
        serve_dir: str = "",
    ) -> None:
        assert cmd or serve_cmd, f"{name}: nothing to run"
        for dep in _listed(deps):
            self.existing(dep)
        serve = serve_cmd if isinstance(serve_cmd, str) else " ".join(serve_cmd)
        self.register(name, Resource(_listed(labels), list(resource_deps), serve_cmd=serve))

    # --- ext://helm_resource (tilt-extensions)

    def helm_repo(
        self,
        name: str,
        url: str,
        resource_name: str = "",
        username: str = "",
        password: str = "",
        labels: str | list[str] = (),
    ) -> None:
        """The extension's helm_repo makes a local resource (named resource_name or name)."""
        assert url.startswith("https://"), url
        self.helm_repos[name] = url
        self.register(resource_name or name, Resource(_listed(labels), []))

    def helm_resource(
        self,
        name: str,
        chart: str,
        deps: list[str] = (),
        release_name: str = "",
        namespace: str | None = None,
        image_deps: list[str] | None = None,
        image_keys: list[Any] | None = None,
        flags: list[str] | None = None,
        image_selector: str = "",
        container_selector: str = "",
        live_update: list[Any] | None = None,
        resource_deps: list[str] | None = None,
        labels: str | list[str] | None = None,
        port_forwards: Any = (),
    ) -> None:
        repo, _, _ = chart.partition("/")
        assert repo in self.helm_repos or self.existing(chart), f"{name}: unknown chart {chart}"
        flags = list(flags or [])
        for i, flag in enumerate(flags):
            if flag == "--set":
                assert "=" in flags[i + 1], f"{name}: --set {flags[i + 1]}"
        self.register(name, Resource(_listed(labels), list(resource_deps or [])))

    # --- evaluation

    def builtins(self) -> dict[str, Any]:
        names = [
            "sync", "fall_back_on", "run", "docker_build", "helm", "k8s_yaml", "k8s_resource",
            "port_forward", "link", "local", "local_resource",
        ]  # fmt: skip
        return {name: _starlark_callable(getattr(self, name)) for name in names}

    def load_extension(self, module_id: str) -> starlark.FrozenModule:
        assert module_id == "ext://helm_resource", f"no stub for {module_id}"
        module = starlark.Module()
        module.add_callable("helm_repo", self.helm_repo)
        module.add_callable("helm_resource", self.helm_resource)
        return module.freeze()

    def evaluate(self, tiltfile: Path) -> None:
        module = starlark.Module()
        for name, function in self.builtins().items():
            module.add_callable(name, function)
        module.add_callable("_os_path_exists", lambda path: (self.root / path).exists())
        # Tilt's top-level for/if, and its `os` module (only os.path.exists is stubbed).
        dialect = starlark.Dialect.extended()
        dialect.enable_top_level_stmt = True
        extensions = [starlark.LibraryExtension.StructType, starlark.LibraryExtension.Print]
        globals_ = starlark.Globals.extended_by(extensions)
        prelude = "os = struct(path = struct(exists = _os_path_exists))"
        starlark.eval(module, starlark.parse("prelude", prelude, dialect), globals_)
        ast = starlark.parse(tiltfile.name, tiltfile.read_text(), dialect)
        starlark.eval(module, ast, globals_, starlark.FileLoader(self.load_extension))
        for name, resource in self.resources.items():
            for dependency in resource.resource_deps:
                assert dependency in self.resources, f"{name} depends on unknown {dependency}"
