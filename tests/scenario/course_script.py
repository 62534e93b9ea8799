"""The course scenario as data: the commands of COURSE.md chapters 3, 5 and 8 in the order a
learner types them, each with the normalisations its output needs before two runs of it can
be compared, and what every run of it must show.

Left out: the browser steps, and `docker build` (chapter 4, tested in tests/build).
`docker manifest inspect` runs with our CLI only: the real CLI asks Docker Hub itself, which
is out of reach offline.

Normalisations (each step names the ones it needs; container IDs are always normalised):
- container IDs: a container's 64- and 12-hex IDs, and the prefixes the script types, become
  ``<C1>`` / ``<C1:12>`` / ``<C1:prefix>``, numbered in the order the containers were made.
  Image IDs, layer IDs and digests are the same bytes for every engine and are left alone.
- ``names``: generated names (adjective_surname) become ``<C1:name>``.
- ``times``: relative times ("Up 5 seconds", "Exited (137) 2 minutes ago", "Less than a
  second ago") keep their words and lose their duration: "Up <duration>".
- ``columns``: a table's columns are as wide as their widest cell, so once ``times`` made
  the cells comparable, runs of two or more spaces become two. Only for tables with times.
- ``timestamps``: RFC 3339 stamps become ``<timestamp>``.
- ``data_root``: the engine's data root becomes /var/lib/docker (each engine under test has
  its own, where a node's engine would have /var/lib/docker).
- ``pull``: the per-layer progress lines arrive in whatever order concurrent downloads
  finish. Each layer's lines are gathered into one line, in the order layers first appear,
  keeping its statuses in order but leaving out `Waiting` (how many downloads run at once),
  `Downloading` and `Extracting` (how fast they ran), and `Verifying Checksum`, which
  dockerd sometimes never shows for a layer that downloads in a moment (it passes on a
  layer's latest status, and a short-lived one can be overtaken).
- ``terminal``: a pty transcript loses its escape sequences and carriage-return redraws:
  busybox's shell asks for the cursor position after each prompt and redraws the prompt
  when the terminal is resized, at moments that depend on timing.
- ``pids``: the PIDs of processes other than PID 1 in `ps` output become ``<pid>``: they
  count the processes the runtime ran in the container before the shell forked (dockerd's
  `ps` gets PID 7, ours PID 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PROMPT = rb"/ # (?:\x1b\[[0-9;]*[A-Za-z])*$"  # busybox sh's prompt, with its cursor query
DETACH = b"\x10\x11"  # Ctrl-P Ctrl-Q


@dataclass(frozen=True)
class Send:
    """Keys typed into the terminal."""

    keys: bytes


@dataclass(frozen=True)
class Expect:
    """Wait until the transcript so far ends with a match of ``pattern``."""

    pattern: bytes


@dataclass(frozen=True)
class Step:
    """One command a learner types.

    ``argv`` follows ``docker``; ``{prefix:LABEL}`` stands for the shortest unique prefix (at
    least 3 characters, as a learner types `f3e`) of the container labelled LABEL, and
    ``$(docker ps -aq)`` is expanded by running that command as a shell would. ``creates``
    labels the container the step makes. ``dialogue`` makes it an interactive step, run in a
    pty. ``shows`` is a regular expression that every run's normalised output must match.
    """

    chapter: int
    argv: tuple[str, ...]
    normalise: tuple[str, ...] = ()
    creates: str | None = None
    shows: str | None = None
    dialogue: tuple[Send | Expect, ...] = ()
    real_cli: bool = True
    course: bool = True  # False: not in COURSE.md, a learner's natural check or clean-up

    @property
    def line(self) -> str:
        return " ".join(("docker", *self.argv))


TABLE = ("names", "times", "columns")

SCRIPT: tuple[Step, ...] = (
    # Chapter 3: images.
    Step(3, ("images", "--digests"), TABLE),
    Step(3, ("manifest", "inspect", "redis", "-v"), real_cli=False),
    Step(3, ("rmi", "redis")),
    Step(3, ("pull", "redis"), ("pull",), shows=r"Status: Downloaded newer image for redis"),
    Step(3, ("pull", "docker.io/redis:latest"), shows=r"Status: Image is up to date"),
    Step(3, ("images", "--digests"), TABLE, shows=r"\nredis +latest +sha256:[0-9a-f]{64} ",
         course=False),
    Step(3, ("rmi", "redis"), shows=r"^Untagged: redis:latest\n", course=False),
    # Chapter 5: containers.
    Step(5, ("run", "-it", "alpine", "sh"), ("terminal", "pull", "pids"), creates="shell",
         shows=r"\n +1 root +\S+ sh\n",
         dialogue=(Expect(PROMPT), Send(b"ps -elf\r"), Expect(rb"ps -elf\r\n(?:.*\n)*.*" + PROMPT),
                   Send(DETACH))),
    Step(5, ("ps",), TABLE, shows=r"\n<C1:12> +alpine +\"sh\" "),
    Step(5, ("run", "-d", "alpine", "sleep", "1d"), creates="sleeper", shows=r"^<C2>\n$"),
    Step(5, ("stop", "{prefix:sleeper}"), shows=r"^<C2:prefix>\n$"),
    Step(5, ("ps", "-a"), TABLE, shows=r"Exited \(137\) <duration> ago"),
    Step(5, ("start", "{prefix:sleeper}"), shows=r"^<C2:prefix>\n$"),
    Step(5, ("exec", "-it", "{prefix:shell}", "sh"), ("terminal",),
         dialogue=(Expect(PROMPT), Send(b'echo "Be kind" > newfile\r'),
                   Expect(rb"newfile\r\n.*" + PROMPT), Send(b"exit\r"))),
    Step(5, ("stop", "{prefix:shell}")),
    Step(5, ("start", "{prefix:shell}")),
    Step(5, ("exec", "{prefix:shell}", "cat", "newfile"), shows=r"^Be kind\n$"),
    Step(5, ("ps", "-a"), TABLE, course=False),
    Step(5, ("ps", "-aq"), course=False),
    Step(5, ("rm", "$(docker ps -aq)", "-f")),
    Step(5, ("run", "-d", "--name", "web", "-p", "5005:80", "nginx"), ("pull",), creates="web"),
    Step(5, ("ps",), TABLE, shows=r" nginx +\"nginx -g 'daemon of…\" .* 0\.0\.0\.0:5005->80/tcp",
         course=False),
    Step(5, ("port", "web"), shows=r"^80/tcp -> 0\.0\.0\.0:5005\n"),
    # Chapter 8: volumes.
    Step(8, ("volume",)),
    Step(8, ("volume", "ls")),
    Step(8, ("volume", "create", "--name", "myvol"), shows=r"^myvol\n$"),
    Step(8, ("volume", "ls"), course=False),
    Step(8, ("volume", "inspect", "myvol"), ("timestamps", "data_root"),
         shows=r'"Mountpoint": "/var/lib/docker/volumes/myvol/_data"'),
    Step(8, ("volume", "rm", "myvol")),
    Step(8, ("run", "-dit", "--name", "voltest", "--mount", "source=ubervol,target=/vol",
             "alpine"), creates="voltest"),
    Step(8, ("volume", "ls"), shows=r"\nlocal +ubervol\n", course=False),
    Step(8, ("exec", "-it", "voltest", "sh"), ("terminal",),
         dialogue=(Expect(PROMPT), Send(b'echo "written by voltest" > /vol/newfile\r'),
                   Expect(rb"newfile\r\n.*" + PROMPT), Send(b"exit\r"))),
    Step(8, ("rm", "voltest", "-f"), shows=r"^voltest\n$"),
    Step(8, ("volume", "ls"), shows=r"\nlocal +ubervol\n", course=False),
    Step(8, ("run", "-dit", "--name", "volmore", "--mount", "source=ubervol,target=/app",
             "nginx"), creates="volmore"),
    Step(8, ("exec", "volmore", "cat", "/app/newfile"), shows=r"^written by voltest\n$",
         course=False),
    Step(8, ("volume", "rm", "ubervol"), shows=r"volume is in use", course=False),
    Step(8, ("rm", "volmore", "-f"), course=False),
    Step(8, ("volume", "rm", "ubervol"), shows=r"^ubervol\n$", course=False),
)  # fmt: skip


@dataclass
class Containers:
    """The containers an engine has held during a run, numbered in the order they appeared,
    with the names the engine generated for them."""

    ids: list[str]
    names: dict[str, str]  # ID -> generated name

    def number(self, container_id: str) -> int:
        return self.ids.index(container_id) + 1


GENERATED_NAME = re.compile(r"^[a-z]+_[a-z]+[0-9]*$")
_CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_DURATION = re.compile(
    r"\b(?:Less than a second|About an? (?:minute|hour)|\d+ (?:second|minute|hour|day|week"
    r"|month|year)s?)\b"
)
_TIMESTAMP = re.compile(r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")
_LAYER_LINE = re.compile(r"^([0-9a-f]{12}): (.*)$")
_PROGRESS = re.compile(r"^(?:Waiting|Downloading|Extracting|Verifying Checksum)\b")
_PS_PID = re.compile(r"^ *(\d+)( +\S+ +\S+ +\S.*)$")


def normalise_ids(text: str, containers: Containers, typed: dict[str, str]) -> str:
    """Container IDs, their 12-character forms and the prefixes this step typed (``typed``:
    prefix -> ID) become numbered tokens."""
    for container_id in containers.ids:
        number = containers.number(container_id)
        text = text.replace(container_id, f"<C{number}>")
        text = re.sub(rf"\b{container_id[:12]}\b", f"<C{number}:12>", text)
    for prefix, container_id in typed.items():
        text = re.sub(rf"\b{prefix}\b", f"<C{containers.number(container_id)}:prefix>", text)
    return text


def normalise_names(text: str, containers: Containers) -> str:
    for container_id, name in containers.names.items():
        text = re.sub(rf"\b{name}\b", f"<C{containers.number(container_id)}:name>", text)
    return text


def normalise_times(text: str) -> str:
    return _DURATION.sub("<duration>", text)


def normalise_columns(text: str) -> str:
    return "\n".join(re.sub(r" {2,}", "  ", line) for line in text.split("\n"))


def normalise_timestamps(text: str) -> str:
    return _TIMESTAMP.sub("<timestamp>", text)


def normalise_data_root(text: str, data_root: str) -> str:
    return text.replace(data_root.rstrip("/") + "/", "/var/lib/docker/")


def normalise_pull(text: str) -> str:
    """Each layer's status lines gathered into one line, where the layer first appeared."""
    lines: list[str] = []
    layers: dict[str, list[str]] = {}
    for line in text.split("\n"):
        match = _LAYER_LINE.match(line)
        if match is None:
            lines.append(line)
            continue
        layer, status = match.group(1), match.group(2).strip()
        if layer not in layers:
            layers[layer] = []
            lines.append(f"\0{layer}")
        if not _PROGRESS.match(status):
            layers[layer].append(status)
    return "\n".join(
        f"{line[1:]}: {' > '.join(layers[line[1:]])}" if line.startswith("\0") else line
        for line in lines
    )


def normalise_terminal(text: str) -> str:
    """A pty transcript as lines: escape sequences gone, carriage returns as line breaks,
    and a prompt that was drawn again right away kept once."""
    segments = [s.rstrip() for s in re.split(r"\r\n|\r|\n", _CSI.sub("", text))]
    segments = [s for s in segments if s]
    kept = [
        segment
        for position, segment in enumerate(segments)
        if not (
            segment == "/ #"
            and position + 1 < len(segments)
            and segments[position + 1].startswith("/ #")
        )
    ]
    return "".join(segment + "\n" for segment in kept)


def normalise_pids(text: str) -> str:
    return "\n".join(
        f"<pid>{match.group(2)}"
        if (match := _PS_PID.match(line)) and match.group(1) != "1" and "PID" not in line
        else line
        for line in text.split("\n")
    )


def normalise(
    text: str, step: Step, containers: Containers, typed: dict[str, str], data_root: str
) -> str:
    """A step's output with everything that legitimately differs between runs replaced."""
    if "terminal" in step.normalise:
        text = normalise_terminal(text)
    if "pull" in step.normalise:
        text = normalise_pull(text)
    if "pids" in step.normalise:
        text = normalise_pids(text)
    text = normalise_ids(text, containers, typed)
    if "names" in step.normalise:
        text = normalise_names(text, containers)
    if "times" in step.normalise:
        text = normalise_times(text)
    if "columns" in step.normalise:
        text = normalise_columns(text)
    if "timestamps" in step.normalise:
        text = normalise_timestamps(text)
    if "data_root" in step.normalise:
        text = normalise_data_root(text, data_root)
    return text
