"""The builder: runs a Dockerfile's stages against an engine's image store. RUN executes in a
container through Slipway's runtime under the default security profile; its filesystem change
becomes a layer computed from the overlay upper dir; COPY and ADD write into a snapshot the
same way; metadata instructions only change the image config. Only the stages the target
needs are built, and each step that makes a layer is looked up in the build cache first."""

from __future__ import annotations

import copy
import json
import logging
import os
import posixpath
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from simulator import linux
from simulator.archive import ArchiveError, apply_layer, diff_to_tar
from simulator.build.cache import BuildCache, Entry, Layer, cache_key
from simulator.build.context import (
    BuildContext,
    ContextError,
    content_digest,
    is_archive,
    legacy_source_hash,
    secure_join,
    unpack_context,
)
from simulator.build.dockerfile import Command, Dockerfile, DockerfileError, Stage, parse
from simulator.build.progress import Reporter, Step
from simulator.build.shell import Lexer, ShellError
from simulator.content.store import digest_bytes
from simulator.images import oci
from simulator.images.oci import Descriptor, ImageConfig, Manifest, RunConfig
from simulator.images.reference import InvalidReference, parse_named
from simulator.images.store import Image, ImageError, ImageNotFound
from simulator.snapshots import SnapshotExistsError, unmount

if TYPE_CHECKING:
    from simulator.engine.daemon import Engine

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ["/bin/sh", "-c"]
SCRATCH = "scratch"
EPOCH = "1970-01-01T00:00:00Z"
BUILDKIT_COMMENT = "buildkit.dockerfile.v0"
# Build args Docker accepts without an ARG, and keeps out of the history.
PREDEFINED_ARGS = frozenset(
    "HTTP_PROXY http_proxy HTTPS_PROXY https_proxy FTP_PROXY ftp_proxy NO_PROXY no_proxy "
    "ALL_PROXY all_proxy".split()
)
_READ_SIZE = 1 << 16
WORK_DIRECTORY = "tmp"  # under the engine's build root: one directory per running build
TRASH_DIRECTORY = "trash"  # finished builds' directories, deleted in the background

log = logging.getLogger("simulator.build")


class BuildError(Exception):
    """A build that failed. ``status`` is the HTTP status when nothing was streamed yet;
    ``code`` a RUN's exit code (the CLI exits with it); ``solve_message`` BuildKit's
    wording of the same failure, for Slipway's CLI."""

    def __init__(
        self, message: str, *, status: int = 500, code: int = 0, solve_message: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.solve_message = solve_message or message


@dataclass
class BuildOptions:
    """What ``POST /build`` asked for."""

    dockerfile: str = "Dockerfile"
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str | None] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    pull: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    network_mode: str = ""
    buildkit_history: bool = False  # Slipway's CLI: BuildKit's history format


@dataclass
class StageState:
    """A stage being built: its image config (with history and diffIDs) and layers."""

    config: ImageConfig
    layers: list[Descriptor]
    chain: str | None
    shown_id: str = ""  # what the legacy stream shows for its FROM step
    created: str = EPOCH  # when its last step ran: its history's times
    args: dict[str, str | None] = field(default_factory=dict)
    cmd_set: bool = False

    @property
    def run(self) -> RunConfig:
        return self.config.config

    def env(self) -> dict[str, str]:
        return dict(entry.partition("=")[::2] for entry in self.run.env)

    def expansion_env(self) -> dict[str, str]:
        """What ``$VAR`` means in this stage: its ARGs with values, then its ENV."""
        env = {name: value for name, value in self.args.items() if value is not None}
        env.update(self.env())
        return env

    def shell(self) -> list[str]:
        return list(self.run.shell) if self.run.shell else list(DEFAULT_SHELL)

    def state_id(self) -> str:
        return self.config.image_id


def _empty_config() -> ImageConfig:
    return ImageConfig(created=EPOCH, config=RunConfig(env=[f"PATH={DEFAULT_PATH}"]))


def _go_quote_list(values: list[str] | None) -> str:
    """A string slice as Go's %q prints it: ``["node" "./app.js"]``."""
    return "[" + " ".join(json.dumps(v, ensure_ascii=False) for v in values or []) + "]"


def _go_duration(nanoseconds: int) -> str:
    if not nanoseconds:
        return "0s"
    seconds = nanoseconds / 1e9
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h0m0s"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m0s"
    return f"{seconds:g}s"


def cache_of(engine: Engine) -> BuildCache:
    """The engine's build cache, made on first use."""
    cache = getattr(engine, "build_cache", None)
    if not isinstance(cache, BuildCache):
        sweep_work_directories(engine.data_root / "build")  # first use: no build runs yet
        cache = BuildCache(engine.data_root / "build", engine.images)
        engine.build_cache = cache  # type: ignore[attr-defined]
    return cache


# The network a RUN container gets: a provider takes the container's ID and ``networkmode``
# and returns the namespace paths and /etc files to use (see container_spec.build_spec). By
# default the engine's (ContainerManager.build_network): the default bridge unless
# networkmode names another network, ``host`` or ``none``.
NetworkProvider = Callable[[str, str], "RunNetwork"]


@dataclass(frozen=True)
class RunNetwork:
    namespace_paths: dict[str, str] = field(default_factory=dict)
    resolv_conf: str | None = None
    hosts: str | None = None
    release: Callable[[], None] = lambda: None


def _missing_paths(rootfs: Path, relative_paths: list[str]) -> list[str]:
    """The paths in ``rootfs``, parents first, that mounting on ``relative_paths`` will
    make: the runtime makes a missing mount point (and the directories above it)."""
    missing: list[str] = []
    for relative in relative_paths:
        parts = relative.split("/")
        for depth in range(1, len(parts) + 1):
            path = secure_join(rootfs, "/".join(parts[:depth]))
            if not os.path.lexists(path) and path not in missing:
                missing.append(path)
    return missing


def _remove_mount_stubs(paths: list[str]) -> None:
    """Remove what the runtime made in a RUN's root filesystem to mount the network's /etc
    files on (empty files, and directories left empty), children first, so that it stays
    out of the RUN's layer, as BuildKit does."""
    for path in reversed(paths):
        with suppress(OSError):
            found = os.lstat(path)
            if stat.S_ISDIR(found.st_mode):
                os.rmdir(path)
            elif stat.S_ISREG(found.st_mode) and found.st_size == 0:
                os.unlink(path)


def isolated_network(container_id: str, network_mode: str) -> RunNetwork:
    """No network: a new, empty network namespace (loopback only)."""
    return RunNetwork()


class Builder:
    """One build on one engine. ``prepare(stream)`` reads the context and the Dockerfile
    (nothing is reported before it returns, so its errors can be HTTP errors); ``run()``
    builds and returns the image."""

    def __init__(
        self,
        engine: Engine,
        options: BuildOptions,
        reporter: Reporter,
        cancelled: threading.Event | None = None,
        network: NetworkProvider | None = None,
    ) -> None:
        self.engine = engine
        self.store = engine.images
        self.options = options
        self.reporter = reporter
        self.cancelled = cancelled or threading.Event()
        from simulator.engine.containers import manager_of  # it builds on this module

        self.network = network or manager_of(engine).build_network
        self.cache = cache_of(engine)
        self.work = engine.data_root / "build" / WORK_DIRECTORY / secrets.token_hex(8)
        self.lease = self.store.lease()
        self.context: BuildContext | None = None
        self.dockerfile: Dockerfile | None = None
        self.dockerfile_size = 0
        self.stages: list[int] = []
        self.built: dict[int, StageState] = {}
        self.step_number = 0
        self.total_steps = 0
        self.meta_args: dict[str, str | None] = {}
        self.used_args: set[str] = set()
        self.step: Step | None = None
        self.stage: Stage | None = None

    # The whole build

    def close(self) -> None:
        """Release what the build held; an image it recorded keeps its own hold."""
        remove_work_directory(self.work, later=True)
        self.lease.close()

    def prepare(self, stream: BinaryIO) -> None:
        self.work.mkdir(parents=True, mode=0o700)
        context_root = self.work / "context"
        context_root.mkdir(mode=0o755)
        try:
            self.context = unpack_context(stream, context_root)
            data = self.context.read_dockerfile(self.options.dockerfile)
            self.dockerfile_size = len(data)
            self.context.drop_ignored(self.options.dockerfile)
        except ContextError as error:
            raise BuildError(str(error)) from None
        try:
            self.dockerfile = parse(data, self.options.dockerfile)
        except DockerfileError as error:
            raise BuildError(str(error), status=400) from None
        target = len(self.dockerfile.stages) - 1
        if self.options.target:
            found = self.dockerfile.stage_index(self.options.target)
            if found is None:
                raise BuildError(
                    f'target stage "{self.options.target}" could not be found', status=400
                )
            target = found
        self.stages = self._needed_stages(target)
        labels = self.options.labels
        for name in sorted(labels):  # as moby: LABEL steps at the end of the target stage
            text = f"LABEL {name}={labels[name]}"
            literal = {"pairs": [(name, labels[name])], "literal": True}
            self.dockerfile.stages[target].commands.append(Command("LABEL", text, 0, literal))
        self.total_steps = len(self.dockerfile.meta_args) + sum(
            1 + len(self.dockerfile.stages[i].commands) for i in self.stages
        )

    def run(self) -> Image:
        assert self.dockerfile is not None and self.context is not None
        self.reporter.loaded(self.options.dockerfile, self.dockerfile_size)
        meta_env = self._meta_env()
        uses_context = False
        for index in self.stages:
            stage = self.dockerfile.stages[index]
            base = self._expand_quietly(stage.base, meta_env)
            if base.lower() != SCRATCH and self._stage_reference(base, index) is None:
                self.reporter.base_metadata(_canonical(base))
            uses_context = uses_context or any(
                command.name in ("COPY", "ADD") and not command.params["flags"].get("from")
                for command in stage.commands
            )
        self.reporter.ignore_loaded(self.context.ignore_size)
        if uses_context:
            self.reporter.context(self.context.size)
        for command in self.dockerfile.meta_args:
            self._begin(str(command), "")
            self._meta_arg(command)
        final: StageState | None = None
        for index in self.stages:
            final = self._build_stage(self.dockerfile.stages[index])
            self.built[index] = final
            self.reporter.stage_done(final.state_id())
        assert final is not None
        unused = sorted(
            name
            for name in self.options.build_args
            if name not in self.used_args and name not in PREDEFINED_ARGS
        )
        if unused:
            self.reporter.warning(
                f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n"
            )
        return self._export(final)

    def _needed_stages(self, target: int) -> list[int]:
        assert self.dockerfile is not None
        stages = self.dockerfile.stages
        env = self._meta_env()
        needed: set[int] = set()
        pending = [target]
        while pending:
            index = pending.pop()
            if index in needed:
                continue
            needed.add(index)
            stage = stages[index]
            sources = [self._expand_quietly(stage.base, env)]
            sources += [
                self._expand_quietly(command.params["flags"]["from"], env)
                for command in stage.commands
                if command.name == "COPY" and command.params["flags"].get("from")
            ]
            for source in sources:
                found = self._stage_reference(source, before=index)
                if found is not None:
                    pending.append(found)
        return sorted(needed)

    def _stage_reference(self, name: str, before: int) -> int | None:
        assert self.dockerfile is not None
        found = self.dockerfile.stage_index(name)
        if found is not None and found < before:
            return found
        if name.isdigit() and int(name) < before:
            return int(name)
        return None

    def _meta_env(self) -> dict[str, str]:
        assert self.dockerfile is not None
        env: dict[str, str] = {}
        for command in self.dockerfile.meta_args:
            for name, default in command.params["pairs"]:
                value = self.options.build_args.get(name)
                if value is None and default is not None:
                    value = self._expand_quietly(default, env)
                if value is not None:
                    env[name] = value
        return env

    @staticmethod
    def _expand_quietly(text: str, env: dict[str, str]) -> str:
        try:
            return Lexer().word(text, env)
        except ShellError:
            return text

    def _begin(self, text: str, vertex: str) -> Step:
        if self.cancelled.is_set():
            raise BuildError("Build cancelled")
        self.step_number += 1
        step = Step(self.step_number, self.total_steps, text, vertex)
        self.step = step
        self.reporter.step(step)
        return step

    def _meta_arg(self, command: Command) -> None:
        for name, default in command.params["pairs"]:
            value = self.options.build_args.get(name)
            if name in self.options.build_args:
                self.used_args.add(name)
            if value is None and default is not None:
                value = self._expand(default, {k: v for k, v in self.meta_args.items() if v})
            self.meta_args[name] = value

    def _expand(self, text: str, env: dict[str, str]) -> str:
        assert self.dockerfile is not None
        try:
            return Lexer(self.dockerfile.escape).word(text, env)
        except ShellError as error:
            raise BuildError(str(error), status=400) from None

    # Stages

    def _build_stage(self, stage: Stage) -> StageState:
        assert self.dockerfile is not None
        self.stage = stage
        vertices = self._stage_vertices(stage)
        position = iter(range(1, len(vertices) + 1))
        prefix = self._stage_prefix(stage)
        meta_env = {name: value for name, value in self.meta_args.items() if value is not None}
        base = self._expand(stage.base, meta_env)
        from_vertex = ""
        source_stage = self._stage_reference(base, before=stage.index)
        if source_stage is None and base.lower() != SCRATCH:
            from_vertex = f"[{prefix}{next(position)}/{len(vertices)}] FROM {_canonical(base)}"
        step = self._begin(stage.original, from_vertex)
        if source_stage is not None:
            state = copy.deepcopy(self.built[source_stage])
            state.shown_id = state.state_id()
            state.args = {}
            state.cmd_set = False
        elif base.lower() == SCRATCH:
            state = StageState(_empty_config(), [], None)
        else:
            state = self._from_image(base, step)
        self.reporter.step_done(step, state.shown_id)
        triggers = list(state.run.on_build)
        state.run.on_build = []
        commands = list(stage.commands)
        if triggers:
            commands = self._triggers(triggers) + commands
        for command in commands:
            vertex = ""
            if command.name in ("RUN", "COPY", "ADD", "WORKDIR") and not command.params.get(
                "trigger"
            ):
                vertex = f"[{prefix}{next(position)}/{len(vertices)}] {_vertex_text(command)}"
            step = self._begin(str(command), vertex)
            self._dispatch(state, command, step)
            self.reporter.step_done(step, state.state_id())
        return state

    def _triggers(self, triggers: list[str]) -> list[Command]:
        assert self.dockerfile is not None
        commands = []
        for trigger in triggers:
            try:
                parsed = parse(f"FROM {SCRATCH}\n{trigger}\n".encode())
            except DockerfileError as error:
                raise BuildError(str(error), status=400) from None
            for command in parsed.stages[0].commands:
                command.params["trigger"] = True
                commands.append(command)
        self.reporter.warning(
            f"# Executing {len(commands)} build trigger{'s' if len(commands) != 1 else ''}\n"
        )
        return commands

    def _stage_vertices(self, stage: Stage) -> list[str]:
        assert self.dockerfile is not None
        base = self._expand_quietly(stage.base, self._meta_env())
        from_image = base.lower() != SCRATCH and self._stage_reference(base, stage.index) is None
        steps = [c for c in stage.commands if c.name in ("RUN", "COPY", "ADD", "WORKDIR")]
        return (["FROM"] if from_image else []) + [c.name for c in steps]

    def _stage_prefix(self, stage: Stage) -> str:
        assert self.dockerfile is not None
        if stage.name:
            return stage.name + " "
        if len(self.dockerfile.stages) > 1:
            return f"stage-{stage.index} "
        return ""

    def _from_image(self, name: str, step: Step) -> StageState:
        try:
            reference = parse_named(name)
        except InvalidReference as error:
            raise BuildError(str(error), status=400) from None
        if reference.is_name_only:
            reference = reference.with_tag("latest")
        image = None
        if not self.options.pull:
            with suppress(ImageNotFound):
                image = self.store.get(reference.string)
        if image is None:
            image = self._pull(reference.string, step)
        self.lease.hold_blob(image.id)
        config = copy.deepcopy(image.config)
        if not any(entry.startswith("PATH=") for entry in config.config.env):
            config.config.env.insert(0, f"PATH={DEFAULT_PATH}")
        state = StageState(config, list(image.manifest.layers), image.top_chain_id, image.id)
        state.created = config.created
        return state

    def _pull(self, name: str, step: Step) -> Image:
        from simulator.images.pull import PullError, pull

        engine = self.engine
        try:
            for message in pull(
                self.store,
                name,
                mirrors=engine.mirrors,
                insecure=engine.config.insecure_registries,
                upstream=not engine.config.offline,
            ):
                self.reporter.pull(step, message)
        except (PullError, InvalidReference, ImageError) as error:
            raise BuildError(str(error), status=getattr(error, "status", 500)) from None
        return self.store.get(name)

    # Instructions

    def _dispatch(self, state: StageState, command: Command, step: Step) -> None:
        handler = getattr(self, f"_do_{command.name.lower()}")
        handler(state, command, step)

    def _history(self, state: StageState, legacy: str, buildkit: str | None) -> None:
        """An empty-layer history entry: ``/bin/sh -c #(nop)  LEGACY`` under the legacy
        path, ``BUILDKIT`` (no entry when None) under Slipway's CLI."""
        if self.options.buildkit_history:
            if buildkit is not None:
                state.config.add_empty_layer(
                    buildkit, created=state.created, comment=BUILDKIT_COMMENT
                )
            return
        created_by = " ".join([*state.shell(), "#(nop) ", legacy])
        state.config.add_empty_layer(created_by, created=state.created)

    def _do_env(self, state: StageState, command: Command, step: Step) -> None:
        env = state.expansion_env()
        parts = []
        for raw_name, raw_value in command.params["pairs"]:
            name, value = self._expand(raw_name, env), self._expand(raw_value, env)
            _set_env(state.run, name, value)
            parts.append(f"{name}={value}")
        self._history(state, "ENV " + " ".join(parts), "ENV " + " ".join(parts))

    def _do_label(self, state: StageState, command: Command, step: Step) -> None:
        env = state.expansion_env()
        literal = command.params.get("literal", False)  # a --label: no history in BuildKit
        parts = []
        for raw_name, raw_value in command.params["pairs"]:
            name, value = raw_name, raw_value
            if not literal:
                name, value = self._expand(raw_name, env), self._expand(raw_value, env)
            state.run.labels[name] = value
            parts.append(f"{name}={value}")
        text = "LABEL " + " ".join(parts)
        self._history(state, text, None if literal else text)

    def _do_maintainer(self, state: StageState, command: Command, step: Step) -> None:
        value = self._expand(command.params["value"], state.expansion_env())
        state.config.author = value
        self._history(state, f"MAINTAINER {value}", f"MAINTAINER {value}")

    def _do_expose(self, state: StageState, command: Command, step: Step) -> None:
        env = state.expansion_env()
        written = []
        ports: list[str] = []
        for raw in command.params["ports"]:
            for word in self._words(raw, env):
                written.append(word)
                ports += _exposed_ports(word)
        for port in ports:
            if port not in state.run.exposed_ports:
                state.run.exposed_ports.append(port)
        port_map = "map[" + " ".join(f"{port}:{{}}" for port in sorted(set(ports))) + "]"
        self._history(state, "EXPOSE " + " ".join(written), f"EXPOSE {port_map}")

    def _words(self, text: str, env: dict[str, str]) -> list[str]:
        assert self.dockerfile is not None
        try:
            return Lexer(self.dockerfile.escape).words(text, env)
        except ShellError as error:
            raise BuildError(str(error), status=400) from None

    def _command_line(self, state: StageState, command: Command) -> list[str] | None:
        args = command.params["cmd"]
        if args is None:
            return None
        if command.params["shell"]:
            return [*state.shell(), *args]
        return list(args)

    def _do_cmd(self, state: StageState, command: Command, step: Step) -> None:
        state.run.cmd = self._command_line(state, command)
        state.cmd_set = True
        text = f"CMD {_go_quote_list(state.run.cmd)}"
        self._history(state, text, text)

    def _do_entrypoint(self, state: StageState, command: Command, step: Step) -> None:
        state.run.entrypoint = self._command_line(state, command)
        if not state.cmd_set:
            state.run.cmd = None
        text = f"ENTRYPOINT {_go_quote_list(state.run.entrypoint)}"
        self._history(state, text, text)

    def _do_user(self, state: StageState, command: Command, step: Step) -> None:
        state.run.user = self._expand(command.params["value"], state.expansion_env())
        self._history(state, f"USER {state.run.user}", f"USER {state.run.user}")

    def _do_stopsignal(self, state: StageState, command: Command, step: Step) -> None:
        value = self._expand(command.params["value"], state.expansion_env())
        if not _valid_signal(value):
            raise BuildError(f"Invalid signal: {value}", status=400)
        state.run.stop_signal = value
        self._history(state, f"STOPSIGNAL {value}", f"STOPSIGNAL {value}")

    def _do_volume(self, state: StageState, command: Command, step: Step) -> None:
        env = state.expansion_env()
        volumes = [self._expand(volume, env) for volume in command.params["volumes"]]
        for volume in volumes:
            if not volume:
                raise BuildError("VOLUME specified can not be an empty string", status=400)
            if volume not in state.run.volumes:
                state.run.volumes.append(volume)
        text = "VOLUME [" + " ".join(volumes) + "]"
        self._history(state, text, text)

    def _do_shell(self, state: StageState, command: Command, step: Step) -> None:
        state.run.shell = list(command.params["shell"])
        text = "SHELL [" + " ".join(state.run.shell) + "]"
        self._history(state, text, text)

    def _do_onbuild(self, state: StageState, command: Command, step: Step) -> None:
        expression = command.params["expression"]
        state.run.on_build.append(expression)
        self._history(state, f"ONBUILD {expression}", None)

    def _do_healthcheck(self, state: StageState, command: Command, step: Step) -> None:
        check = dict(command.params["healthcheck"])
        state.run.healthcheck = check
        fields = (
            f"Test:[{' '.join(check['Test'])}] "
            f"Interval:{_go_duration(check.get('Interval', 0))} "
            f"Timeout:{_go_duration(check.get('Timeout', 0))} "
            f"StartPeriod:{_go_duration(check.get('StartPeriod', 0))} "
            f"StartInterval:{_go_duration(check.get('StartInterval', 0))} "
            f"Retries:{check.get('Retries', 0)}"
        )
        self._history(state, f"HEALTHCHECK &{{{fields}}}", f"HEALTHCHECK {{{fields}}}")

    def _do_arg(self, state: StageState, command: Command, step: Step) -> None:
        parts = []
        for name, default in command.params["pairs"]:
            value: str | None
            if name in self.options.build_args:
                self.used_args.add(name)
            given = self.options.build_args.get(name)
            if given is not None:
                value = given
            elif default is not None:
                value = self._expand(default, state.expansion_env())
            else:
                value = self.meta_args.get(name)
            state.args[name] = value
            parts.append(name if value is None else f"{name}={value}")
        self._history(state, "ARG " + " ".join(parts), "ARG " + " ".join(parts))

    def _do_workdir(self, state: StageState, command: Command, step: Step) -> None:
        requested = self._expand(command.params["value"], state.expansion_env())
        joined = posixpath.join("/", state.run.working_dir or "/", requested)
        state.run.working_dir = posixpath.normpath(joined) if joined != "/" else "/"
        if state.run.working_dir.startswith("//"):
            state.run.working_dir = state.run.working_dir[1:]
        text = f"WORKDIR {state.run.working_dir}"
        if state.run.working_dir == "/":
            self._history(state, text, text)
            return
        key = cache_key(state.chain, "WORKDIR", state.run.working_dir, state.run.user)

        def make(rootfs: Path) -> None:
            os.makedirs(secure_join(rootfs, state.run.working_dir), mode=0o755, exist_ok=True)

        entry = self._layer_step(state, step, key, make)
        legacy = " ".join([*state.shell(), "#(nop)", text])
        self._record(state, entry, legacy, text)

    # Steps that make layers

    def _record(
        self, state: StageState, entry: Entry, legacy: str, buildkit: str, run: bool = False
    ) -> None:
        """Add a step's layer (or an empty-layer entry) to the stage's image."""
        created_by = legacy
        comment = ""
        if self.options.buildkit_history:
            created_by = buildkit + (" # buildkit" if run else "")
            comment = BUILDKIT_COMMENT
        state.created = state.config.created = entry.created
        layer = entry.layer
        if layer is None:
            state.config.add_empty_layer(created_by, created=entry.created, comment=comment)
            return
        state.config.add_layer(layer.diff_id, created_by, created=entry.created, comment=comment)
        state.layers.append(Descriptor(layer.media_type, layer.digest, layer.size))
        state.chain = layer.chain_id

    def _layer_step(
        self,
        state: StageState,
        step: Step,
        key: str,
        work: Callable[[Path], None],
    ) -> Entry:
        """Run ``work(rootfs)`` on a new snapshot of the stage (unless the cache has the
        result) and turn what it changed into a layer."""
        entry = self._cached(key, step)
        if entry is not None:
            return entry
        snapshot = f"build-{secrets.token_hex(12)}"
        self.store.snapshots.prepare(snapshot, state.chain)
        try:
            rootfs = self.work / snapshot
            rootfs.mkdir()
            with _mounted(self.store.snapshots.mounts(snapshot), rootfs):
                work(rootfs)
            layer = self._commit(snapshot, state.chain)
        except BaseException:
            with suppress(Exception):
                self.store.snapshots.remove(snapshot)
            raise
        entry = Entry(layer, oci.rfc3339(), description=step.vertex or step.text)
        self.cache.put(key, entry)
        return entry

    def _cached(self, key: str, step: Step) -> Entry | None:
        """The cache's entry for the step (reported, its layer held), unless --no-cache."""
        if self.options.no_cache:
            return None
        entry = self.cache.get(key)
        if entry is not None:
            self.reporter.cached(step)
            if entry.layer is not None:
                self.lease.pin_layer(entry.layer.chain_id)
                self.lease.hold_blob(entry.layer.digest)
        return entry

    def _commit(self, snapshot: str, parent: str | None) -> Layer | None:
        """The snapshot's changes as a layer (None when it changed nothing)."""
        snapshots = self.store.snapshots
        upper = snapshots.upper_dir(snapshot)
        if not any(os.scandir(upper)):
            snapshots.remove(snapshot)
            return None
        with self.store.content.writer() as writer:
            result = diff_to_tar(upper, writer, compress=True)
            info = writer.commit()
        self.lease.hold_blob(info.digest)
        diff_id = result.diff_id
        chain = diff_id if parent is None else digest_bytes(f"{parent} {diff_id}".encode())
        self.lease.pin_layer(chain)
        try:
            snapshots.commit(chain, snapshot)
        except SnapshotExistsError:  # the same layer, made before on the same parent
            snapshots.remove(snapshot)
        return Layer(diff_id, info.digest, info.size, oci.OCI_LAYER_GZIP, chain)

    def _run_environment(self, state: StageState) -> list[str]:
        env = list(state.run.env)
        names = {entry.partition("=")[0] for entry in env}
        for name, value in state.args.items():
            if value is not None and name not in names:
                env.append(f"{name}={value}")
        return env

    def _do_run(self, state: StageState, command: Command, step: Step) -> None:
        flags = command.params["flags"]
        if flags.get("mount"):
            raise BuildError("the --mount option is not supported by this builder", status=400)
        if flags.get("security") not in (None, "sandbox"):
            raise BuildError(f"security mode {flags['security']!r} is not allowed", status=400)
        network = flags.get("network") or self.options.network_mode or "default"
        argv, script = self._run_argv(state, command)
        args_with_values = [(k, v) for k, v in state.args.items() if v is not None]
        prefix = []
        if args_with_values:
            prefix = [f"|{len(args_with_values)}"] + [f"{k}={v}" for k, v in args_with_values]
        shown = " ".join(prefix + argv)
        key = cache_key(
            state.chain,
            "RUN",
            argv,
            script,
            self._run_environment(state),
            state.run.working_dir,
            state.run.user,
            network,
        )

        def execute(rootfs: Path) -> None:
            self._run_container(state, argv, script, rootfs, step, network)

        entry = self._layer_step(state, step, key, execute)
        self._record(state, entry, shown, f"RUN {shown}", run=True)

    def _run_argv(self, state: StageState, command: Command) -> tuple[list[str], str | None]:
        """The RUN's argv, and the script of a heredoc that starts with ``#!`` (mounted at
        /dev/pipes/NAME and run as a file), as BuildKit runs heredocs."""
        args = list(command.params["cmd"] or [])
        heredocs = command.params["heredocs"]
        if not command.params["shell"]:
            if not args:
                raise BuildError("RUN requires at least one argument", status=400)
            return args, None
        script = None
        if heredocs:
            from simulator.build.dockerfile import parse_heredoc

            if len(args) == 1 and parse_heredoc(args[0].strip()) is not None:
                data = heredocs[0].text()
                if data.startswith("#!"):
                    script = data
                    return [f"/dev/pipes/{heredocs[0].name}"], script
                args = [data]
            else:
                text = args[0]
                for heredoc in heredocs:
                    text += "\n" + heredoc.content + heredoc.name
                args = [text]
        if not args or not args[0].strip():
            raise BuildError("RUN requires at least one argument", status=400)
        return [*state.shell(), *args], script

    def _run_container(
        self,
        state: StageState,
        argv: list[str],
        script: str | None,
        rootfs: Path,
        step: Step,
        network_mode: str,
    ) -> None:
        from simulator.engine.container_spec import CreateError, build_spec, parse_create_body
        from simulator.engine.containers import manager_of, runtime_root_for

        container_id = secrets.token_hex(32)
        bundle = rootfs.parent / f"bundle-{container_id[:12]}"
        bundle.mkdir()
        body: dict[str, Any] = {
            "Image": "build",
            "Cmd": argv,
            "Env": self._run_environment(state),
            "WorkingDir": state.run.working_dir,
            "User": state.run.user,
            "HostConfig": {"NetworkMode": network_mode},
        }
        attachment = self.network(container_id, network_mode)
        try:
            spec = build_spec(
                parse_create_body(body),
                ImageConfig(),
                str(rootfs),
                container_id,
                allowed_bind_roots=(),
                hostname=container_id[:12],
                cgroups_path=f"{manager_of(self.engine).cgroup_parent}/{container_id}",
                namespace_paths=attachment.namespace_paths,
                resolv_conf_path=attachment.resolv_conf,
                hosts_path=attachment.hosts,
            )
        except CreateError as error:
            attachment.release()
            raise BuildError(str(error)) from None
        if script is not None:
            pipes = bundle / "pipes"
            pipes.mkdir()
            name = argv[0].rsplit("/", 1)[1]
            (pipes / name).write_text(script)
            (pipes / name).chmod(0o755)
            spec["mounts"].append(
                {
                    "destination": "/dev/pipes",
                    "type": "bind",
                    "source": str(pipes),
                    "options": ["rbind", "ro"],
                }
            )
        (bundle / "config.json").write_text(json.dumps(spec))
        runtime_root = runtime_root_for(self.engine.data_root)
        command = [sys.executable, "-m", "simulator.runtime", "--root", str(runtime_root)]
        command += ["run", container_id, "--bundle", str(bundle)]
        log.info("build container %s: %s", container_id[:12], " ".join(argv))
        self.reporter.running(step, container_id)
        mounted = [attachment.resolv_conf and "etc/resolv.conf", attachment.hosts and "etc/hosts"]
        stubs = _missing_paths(rootfs, [path for path in mounted if path])
        try:
            code = self._watch(command, step)
        finally:
            attachment.release()
            _remove_mount_stubs(stubs)
        if code == 0:
            self.reporter.removed(step, container_id)
        else:
            shown = " ".join(argv)
            raise BuildError(
                f"The command '{shown}' returned a non-zero code: {code}",
                code=code,
                solve_message=f'process "{shown}" did not complete successfully: exit code: {code}',
            )

    def _watch(self, command: list[str], step: Step) -> int:
        """Run the runtime in the foreground, reporting what the container prints; stop it
        if the build is cancelled."""
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert process.stdout is not None
        stopper = threading.Thread(target=self._stop_when_cancelled, args=(process,), daemon=True)
        stopper.start()
        try:
            while data := process.stdout.read1(_READ_SIZE):
                self.reporter.output(step, data)
        finally:
            process.stdout.close()
            code = process.wait()
        if self.cancelled.is_set():
            raise BuildError("Build cancelled")
        return code

    def _stop_when_cancelled(self, process: subprocess.Popen[bytes]) -> None:
        while process.poll() is None:
            if self.cancelled.wait(0.2):
                with suppress(ProcessLookupError):
                    process.send_signal(signal.SIGKILL)
                return

    # COPY and ADD

    def _do_copy(self, state: StageState, command: Command, step: Step) -> None:
        self._copy(state, command, step, add=False)

    def _do_add(self, state: StageState, command: Command, step: Step) -> None:
        self._copy(state, command, step, add=True)

    def _copy(self, state: StageState, command: Command, step: Step, *, add: bool) -> None:
        assert self.context is not None
        params = command.params
        flags = params["flags"]
        env = state.expansion_env()
        name = "ADD" if add else "COPY"
        sources = [self._expand(source, env) for source in params["sources"]]
        dest = self._expand(params["dest"], env)
        chown = self._expand(flags.get("chown", ""), env)
        chmod = flags.get("chmod", "")
        if chmod and not _valid_chmod(chmod):
            raise BuildError(
                f"invalid chmod parameter: '{chmod}'. it should be octal string and between "
                "0 and 07777",
                status=400,
            )
        if flags.get("checksum"):
            raise BuildError("ADD --checksum needs a remote source, which is not supported")
        source_from = self._expand(flags.get("from", ""), env)
        contents = [
            (path, self._expand(data, env) if expand else data, expand)
            for path, data, expand in params["contents"]
        ]
        dest_path = _destination(state.run.working_dir, dest)
        source_chain = self._source_chain(source_from, step) if source_from else None
        # A stage's or an image's layers never change: what their files sum to is known
        # from an earlier build, and a cache hit then mounts nothing.
        sums_key = cache_key(source_chain, name, sources) if source_chain else None
        known = self.cache.source_sums(sums_key) if sums_key else None
        entry = None
        if known is not None:
            digests, hashes, multiple = known
            key = cache_key(state.chain, name, digests, contents, dest_path, chown, chmod, multiple)
            entry = self._cached(key, step)
        if entry is None:
            with self._copy_source(source_from, source_chain) as (root, from_context):
                files = self._resolve_sources(root, sources, add, from_context, name)
                multiple = len(files) + len(contents) > 1 or any(
                    _has_wildcard(source) for source in sources
                )
                digests = [
                    (relative, content_digest(path), str(path.is_dir())) for relative, path in files
                ]
                hashes = [legacy_source_hash(root, relative) for relative, _ in files]
                if sums_key:
                    self.cache.remember_source_sums(sums_key, (digests, hashes, multiple))
                key = cache_key(
                    state.chain, name, digests, contents, dest_path, chown, chmod, multiple
                )

                def write(rootfs: Path) -> None:
                    owner = _owner(rootfs, chown) if chown else (0, 0)
                    mode = int(chmod, 8) if chmod else None
                    self._copy_into(rootfs, files, contents, dest_path, multiple, owner, mode, add)

                entry = self._layer_step(state, step, key, write)
        if len(hashes) == 1 and not contents:
            source_hash = hashes[0]
        else:
            joined = ",".join(hashes + [f"<<{path}" for path, _, _ in contents])
            source_hash = "multi:" + digest_bytes(joined.encode()).removeprefix("sha256:")
        chown_comment = f"--chown={chown} " if chown else ""
        legacy = " ".join(
            [*state.shell(), "#(nop)", f"{name} {chown_comment}{source_hash} in {dest} "]
        )
        shown = [name]
        if chown:
            shown.append(f"--chown={chown}")
        if chmod:
            shown.append(f"--chmod={chmod}")
        shown += params["sources"] + [f"<<{path}" for path, _, _ in params["contents"]]
        shown.append(params["dest"])
        self._record(state, entry, legacy, " ".join(shown), run=True)

    def _source_chain(self, source_from: str, step: Step) -> str | None:
        """The layers of the stage or image ``COPY --from`` names (None: empty)."""
        assert self.stage is not None
        index = self._stage_reference(source_from, before=self.stage.index)
        if index is not None:
            if index not in self.built:
                raise BuildError(f"stage {source_from} was not built", status=400)
            return self.built[index].chain
        return self._from_image(source_from, step).chain

    @contextmanager
    def _copy_source(self, source_from: str, chain: str | None) -> Iterator[tuple[Path, bool]]:
        """The directory to copy from: the context, or the root filesystem of another
        stage or an image (its layers ``chain``, mounted read-only while the copy runs)."""
        assert self.context is not None
        if not source_from:
            yield self.context.root, True
            return
        view = f"build-view-{secrets.token_hex(12)}"
        root = self.work / view
        root.mkdir()
        try:
            mounts = self.store.snapshots.view(view, chain)
            with _mounted(mounts, root):
                yield root, False
        finally:
            with suppress(Exception):
                self.store.snapshots.remove(view)

    def _resolve_sources(
        self, root: Path, sources: list[str], add: bool, from_context: bool, name: str
    ) -> list[tuple[str, Path]]:
        """(path relative to the source root, resolved path) of each file to copy."""
        found: list[tuple[str, Path]] = []
        for source in sources:
            if _is_url(source):
                if not add:
                    raise BuildError("source can't be a URL for COPY", status=400)
                found.append((source, self._download(source)))
                continue
            relative = posixpath.normpath("/" + source).lstrip("/") or "."
            if _has_wildcard(relative):
                matches = sorted(_glob(root, relative))
                found += [(match, Path(secure_join(root, match))) for match in matches]
                continue
            path = Path(secure_join(root, relative))
            if not os.path.lexists(path):
                if from_context:
                    raise BuildError(
                        f"{name} failed: file not found in build context or excluded by "
                        f".dockerignore: stat {relative}: file does not exist",
                        solve_message="failed to compute cache key: failed to calculate "
                        f'checksum of ref: "/{relative}": not found',
                    )
                raise BuildError(
                    f"{name} failed: stat {relative}: file does not exist",
                    solve_message=f'failed to compute cache key: "/{relative}": not found',
                )
            found.append((relative, path))
        return found

    def _download(self, url: str) -> Path:
        if self.engine.config.offline:
            raise BuildError(
                f"failed to fetch {url}: this engine is offline, so ADD cannot download "
                "remote files; put the file in the build context instead",
                status=400,
            )
        name = posixpath.basename(urllib.parse.urlsplit(url).path) or "__unnamed__"
        target = self.work / f"download-{secrets.token_hex(6)}"
        target.mkdir()
        try:
            with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 - http(s) only
                with open(target / name, "wb") as file:
                    shutil.copyfileobj(answer, file)
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise BuildError(f"failed to fetch {url}: {error}") from None
        (target / name).chmod(0o600)
        return target / name

    def _copy_into(
        self,
        rootfs: Path,
        files: list[tuple[str, Path]],
        contents: list[tuple[str, str, bool]],
        dest: str,
        multiple: bool,
        owner: tuple[int, int],
        mode: int | None,
        add: bool,
    ) -> None:
        into_directory = dest.endswith("/") or multiple
        target = Path(secure_join(rootfs, dest))
        if target.is_dir():
            into_directory = True
        if into_directory:
            _make_parents(rootfs, dest, owner)
        else:
            _make_parents(rootfs, posixpath.dirname(dest.rstrip("/")) or "/", owner)
        for relative, source in files:
            if source.is_dir() and not source.is_symlink():
                destination = Path(secure_join(rootfs, dest))
                _copy_tree(source, destination, owner, mode)
                continue
            if add and not _is_url(relative) and is_archive(source):
                destination = Path(secure_join(rootfs, dest))
                destination.mkdir(parents=True, exist_ok=True)
                try:
                    with open(source, "rb") as archive:
                        apply_layer(archive, destination, whiteouts="delete")
                except ArchiveError as error:
                    raise BuildError(f"failed to unpack {relative}: {error}") from None
                continue
            name = posixpath.basename(relative.rstrip("/")) or source.name
            path = posixpath.join(dest, name) if into_directory else dest
            _copy_entry(source, Path(secure_join(rootfs, path)), owner, mode)
        for path, data, _ in contents:
            name = posixpath.join(dest, path) if into_directory else dest
            destination = Path(secure_join(rootfs, name))
            destination.write_text(data)
            os.chown(destination, *owner)
            os.chmod(destination, mode if mode is not None else 0o644)

    # The image

    def _export(self, state: StageState) -> Image:
        started = time.monotonic()
        config_bytes = state.config.to_bytes()
        config_descriptor = Descriptor.for_bytes(oci.OCI_CONFIG, config_bytes)
        manifest = Manifest(config_descriptor, tuple(state.layers))
        tags = []
        for tag in self.options.tags:
            try:
                tags.append(parse_named(tag))
            except InvalidReference as error:
                raise BuildError(str(error), status=400) from None
        try:
            image = self.store.put_image(
                config_bytes, manifest.to_bytes(), tags=tags, lease=self.lease
            )
        except ImageError as error:
            raise BuildError(str(error)) from None
        names = [(ref.with_tag("latest") if ref.is_name_only else ref).string for ref in tags]
        self.reporter.exporting(image.id, names, time.monotonic() - started)
        familiar = [(ref.with_tag("latest") if ref.is_name_only else ref).familiar for ref in tags]
        self.reporter.succeeded(image.id, familiar)
        return image


# Helpers


def _canonical(name: str) -> str:
    try:
        reference = parse_named(name)
    except InvalidReference:
        return name
    return (reference.with_tag("latest") if reference.is_name_only else reference).string


def _vertex_text(command: Command) -> str:
    keyword, _, rest = command.original.partition(" ")
    return f"{keyword.upper()} {rest.strip()}".strip()


def _set_env(run: RunConfig, name: str, value: str) -> None:
    entry = f"{name}={value}"
    for index, existing in enumerate(run.env):
        if existing.partition("=")[0] == name:
            run.env[index] = entry
            return
    run.env.append(entry)


def _exposed_ports(spec: str) -> list[str]:
    port_range, _, protocol = spec.rpartition(":")[2].partition("/")
    protocol = (protocol or "tcp").lower()
    if protocol not in ("tcp", "udp", "sctp"):
        raise BuildError(f"invalid proto: {protocol}", status=400)
    start, _, end = port_range.partition("-")
    if not start.isdigit() or (end and not end.isdigit()):
        raise BuildError(f"invalid containerPort: {port_range}", status=400)
    first, last = int(start), int(end or start)
    if first > 65535 or last > 65535 or last < first:
        raise BuildError(f"invalid containerPort: {port_range}", status=400)
    return [f"{port}/{protocol}" for port in range(first, last + 1)]


def _valid_signal(value: str) -> bool:
    if value.isdigit():
        return 0 < int(value) < 65
    name = value.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    return name in signal.Signals.__members__ or name.startswith(("SIGRTMIN", "SIGRTMAX"))


def _valid_chmod(value: str) -> bool:
    try:
        return 0 <= int(value, 8) <= 0o7777
    except ValueError:
        return False


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _has_wildcard(path: str) -> bool:
    return any(character in path for character in "*?[")


def _glob(root: Path, pattern: str) -> list[str]:
    """Paths under ``root`` that Go's filepath.Match takes for ``pattern``."""
    depth = pattern.count("/")
    expression = ""
    position = 0
    while position < len(pattern):
        character = pattern[position]
        position += 1
        if character == "*":
            expression += "[^/]*"
        elif character == "?":
            expression += "[^/]"
        elif character == "[":
            end = pattern.find("]", position + 1)
            if end < 0:
                raise BuildError(f"syntax error in pattern: {pattern}", status=400)
            inner = pattern[position:end]
            inner = "^" + inner[1:] if inner.startswith("^") else inner
            expression += "[" + inner.replace("\\", "\\\\") + "]"
            position = end + 1
        else:
            expression += re.escape(character)
    compiled = re.compile(expression, re.DOTALL)
    found = []
    for directory, dirnames, filenames in os.walk(root):
        relative_dir = os.path.relpath(directory, root)
        level = 0 if relative_dir == "." else relative_dir.count("/") + 1
        for name in dirnames + filenames:
            relative = name if relative_dir == "." else f"{relative_dir}/{name}"
            if level == depth and compiled.fullmatch(relative):
                found.append(relative)
        if level >= depth:
            dirnames.clear()
    return found


def _destination(working_dir: str, dest: str) -> str:
    """COPY's destination as an absolute path, ``/`` kept at the end (``.`` is ``./``)."""
    if dest in ("", "."):
        dest = "./"
    trailing = dest.endswith("/")
    if not dest.startswith("/"):
        dest = posixpath.join(working_dir or "/", dest)
    dest = posixpath.normpath(dest)
    if dest.startswith("//"):
        dest = dest[1:]
    return dest + "/" if trailing and dest != "/" else dest


def _owner(rootfs: Path, chown: str) -> tuple[int, int]:
    from simulator.engine.container_spec import CreateError, resolve_user

    try:
        user = resolve_user(str(rootfs), chown)
    except CreateError as error:
        raise BuildError(str(error)) from None
    return (user.uid, user.gid) if ":" in chown else (user.uid, user.uid)


def _make_parents(rootfs: Path, directory: str, owner: tuple[int, int]) -> None:
    parts = [part for part in directory.split("/") if part]
    for depth in range(1, len(parts) + 1):
        path = Path(secure_join(rootfs, "/".join(parts[:depth])))
        if not path.exists():
            path.mkdir(mode=0o755)
            os.chown(path, *owner)


def _copy_entry(source: Path, destination: Path, owner: tuple[int, int], mode: int | None) -> None:
    status = os.lstat(source)
    if os.path.lexists(destination) and not destination.is_dir():
        destination.unlink()
    elif destination.is_dir() and not destination.is_symlink():
        shutil.rmtree(destination)
    if stat.S_ISLNK(status.st_mode):
        os.symlink(os.readlink(source), destination)
        os.lchown(destination, *owner)
    elif stat.S_ISREG(status.st_mode):
        shutil.copyfile(source, destination, follow_symlinks=False)
        os.chown(destination, *owner)
        os.chmod(destination, mode if mode is not None else stat.S_IMODE(status.st_mode))
    else:
        return  # devices, fifos and sockets are not copied
    os.utime(destination, ns=(status.st_mtime_ns, status.st_mtime_ns), follow_symlinks=False)


def _copy_tree(source: Path, destination: Path, owner: tuple[int, int], mode: int | None) -> None:
    """Copy the contents of directory ``source`` into ``destination`` (made if missing,
    with the source directory's mode and time)."""
    status = os.stat(source)
    if not destination.is_dir():
        if os.path.lexists(destination):
            destination.unlink()
        destination.mkdir(mode=0o755)
        os.chown(destination, *owner)
        os.chmod(destination, mode if mode is not None else stat.S_IMODE(status.st_mode))
        created = True
    else:
        created = False
    for entry in sorted(os.scandir(source), key=lambda e: e.name):
        target = destination / entry.name
        if entry.is_dir(follow_symlinks=False):
            _copy_tree(Path(entry.path), target, owner, mode)
        else:
            _copy_entry(Path(entry.path), target, owner, mode)
    if created:
        os.utime(destination, ns=(status.st_mtime_ns, status.st_mtime_ns))


@contextmanager
def _mounted(mounts: list[Any], target: Path) -> Iterator[None]:
    """The mounts on ``target`` while the block runs. Each is undone by count, not by
    os.path.ismount, which can't see a bind mount from the same filesystem."""
    done = 0
    try:
        for mount in mounts:
            mount.mount(target)
            done += 1
        yield
    finally:
        for _ in range(done):
            try:
                unmount(target)
            except OSError as error:
                log.warning("cannot unmount %s: %s", target, error)


def _mounts_under(directory: Path) -> list[str]:
    prefix = str(directory) + "/"
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4].replace("\\040", " ") for line in mountinfo]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def remove_work_directory(directory: Path, later: bool = False) -> None:
    """Remove a build's directory, after unmounting anything still mounted in it (never
    deleting through a mount into a layer). ``later``: it moves to the engine's build
    trash at once, and a thread deletes it there (the build's answer need not wait)."""
    for point in _mounts_under(directory):
        try:
            unmount(point)
        except OSError:
            with suppress(OSError):
                linux.umount2(point, linux.MNT_DETACH)
    if _mounts_under(directory):
        log.error("keeping %s: something is still mounted in it", directory)
        return
    if later:
        trash = directory.parent.parent / TRASH_DIRECTORY
        try:
            trash.mkdir(mode=0o700, exist_ok=True)
            os.rename(directory, trash / directory.name)
        except FileNotFoundError:
            return
        except OSError as error:
            log.warning("cannot move %s to the trash: %s", directory, error)
        else:
            directory = trash / directory.name
            threading.Thread(
                target=shutil.rmtree, args=(directory, True), name="build-trash", daemon=True
            ).start()
            return
    shutil.rmtree(directory, ignore_errors=True)


def sweep_work_directories(build_root: Path) -> None:
    """Remove what builds of an engine that stopped left in its work and trash directories
    (a build's own directory is under ``build_root/tmp``)."""
    for parent in (build_root / WORK_DIRECTORY, build_root / TRASH_DIRECTORY):
        with suppress(FileNotFoundError):
            for child in parent.iterdir():
                remove_work_directory(child)
