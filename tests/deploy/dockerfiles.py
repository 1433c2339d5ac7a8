"""Reading a Dockerfile's instructions, enough to check its structure without building it."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, COPY, RUN, ...
    flags: dict[str, str]  # --from=build -> {"from": "build"}
    arguments: str  # the rest, as written

    def words(self) -> list[str]:
        return shlex.split(self.arguments)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]  # ARGs before the first FROM, with their defaults
    stages: list[Stage]

    def args(self) -> set[str]:
        """Every build argument the Dockerfile declares."""
        staged = {i.arguments.split("=")[0] for s in self.stages for i in s.all("ARG")}
        return set(self.global_args) | staged

    def resolve(self, text: str) -> str:
        """Substitute the global ARGs' defaults (as FROM lines see them)."""
        return re.sub(r"\$\{(\w+)\}", lambda m: self.global_args.get(m[1], m[0]), text)


def logical_lines(text: str) -> list[str]:
    """Lines with continuations joined, comments and blank lines dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    return lines


def parse(path: Path) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(path.read_text()):
        keyword, _, rest = line.partition(" ")
        flags = {}
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            name, _, value = flag[2:].partition("=")
            flags[name] = value
        instruction = Instruction(keyword.upper(), flags, rest.strip())
        if instruction.keyword == "FROM":
            base, _, name = instruction.arguments.partition(" AS ")
            stages.append(Stage(base.strip(), name.strip() or None))
        elif not stages:
            assert instruction.keyword == "ARG", f"{line!r} before the first FROM"
            name, _, default = instruction.arguments.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append(instruction)
    return Dockerfile(global_args, stages)


def copy_sources(dockerfile: Dockerfile) -> list[str]:
    """The build-context paths that COPY instructions read (not those from other stages)."""
    sources = []
    for stage in dockerfile.stages:
        for copy in stage.all("COPY"):
            if "from" not in copy.flags:
                sources += copy.words()[:-1]
    return sources
