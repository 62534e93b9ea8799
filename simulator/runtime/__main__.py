"""``python -m simulator.runtime [--root DIR] VERB ...``: runc's verbs, plus ``steps``.

The argument parser is hand-written: argparse would cost more start-up time than a whole
container start is allowed.
"""

from __future__ import annotations

import os
import sys

USAGE = """usage: python -m simulator.runtime [--root DIR] COMMAND [OPTIONS] [ARGS]

Slipway's OCI runtime. Commands, with runc's meaning:
  create ID [--bundle DIR] [--pid-file F] [--console-socket S]
  start ID
  state ID
  kill ID [SIGNAL]
  delete [--force] ID
  run ID [--bundle DIR] [--detach] [--pid-file F] [--console-socket S]
  exec ID [-t] [-d] [--cwd DIR] [-e VAR=VALUE] [-u UID[:GID]] [--pid-file F]
       [--console-socket S] -- CMD [ARG...]
  exec ID --process FILE [-d] [--pid-file F] [--console-socket S]
  list [--format table|json] [-q]
  pause ID
  resume ID
  spec [--bundle DIR] [--rootless]      write Slipway's default config.json
Slipway's own:
  steps ID [--json]                     what the runtime did to the kernel, in order
Global options: --root DIR; --log FILE (errors go there instead of to stderr).
"""

_WITH_VALUE = {
    "--bundle",
    "-b",
    "--pid-file",
    "--console-socket",
    "--cwd",
    "--env",
    "-e",
    "--user",
    "-u",
    "--format",
    "-f",
    "--root",
    "--log",
    "--log-format",
    "--process",
    "-p",
}


class UsageError(Exception):
    pass


def parse(argv: list[str], verb: str = "") -> tuple[dict[str, list[str]], list[str]]:
    """Split options from positional arguments; ``--`` ends option parsing, and so does
    exec's container ID: everything after it is the command."""
    with_value = _WITH_VALUE if verb == "list" else _WITH_VALUE - {"-f"}
    options: dict[str, list[str]] = {}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            positional.extend(argv[i + 1 :])
            break
        if verb == "exec" and positional:
            positional.extend(argv[i:])
            break
        if arg.startswith("-") and len(arg) > 1:
            name, eq, value = arg.partition("=")
            if name in with_value:
                if not eq:
                    i += 1
                    if i >= len(argv):
                        raise UsageError(f"option {name} needs a value")
                    value = argv[i]
                options.setdefault(name, []).append(value)
            else:
                options.setdefault(name, []).append("true")
        else:
            positional.append(arg)
        i += 1
    return options, positional


def _one(options: dict[str, list[str]], *names: str) -> str | None:
    for name in names:
        if name in options:
            return options[name][-1]
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    root = None
    log_path = None
    while argv and argv[0].startswith("-"):
        flag = argv.pop(0)
        name, eq, value = flag.partition("=")
        if name == "--root":
            root = value if eq else (argv.pop(0) if argv else None)
        elif name == "--log":
            log_path = value if eq else (argv.pop(0) if argv else None)
        elif name in ("--log-format", "--criu"):
            if not eq and argv:
                argv.pop(0)
        elif name in ("-h", "--help"):
            sys.stdout.write(USAGE)
            return 0
        elif name in ("--debug", "--systemd-cgroup", "--rootless"):
            continue
        elif name in ("-v", "--version"):
            sys.stdout.write("slipway-runtime version 0.1.0\nspec: 1.0.2\n")
            return 0
        else:
            sys.stderr.write(f"slipway-runtime: unknown global option {flag}\n{USAGE}")
            return 2
    if not argv:
        sys.stderr.write(USAGE)
        return 2
    verb, rest = argv[0], argv[1:]
    try:
        return _dispatch(root, verb, rest)
    except UsageError as e:
        _report(log_path, f"slipway-runtime {verb}: {e}\n")
        return 2
    except Exception as e:  # noqa: BLE001 - every failure gets a message, not a traceback
        from simulator.runtime.container import RuntimeFailure
        from simulator.runtime.state import StateError

        if isinstance(e, (RuntimeFailure, StateError)):
            _report(log_path, f"slipway-runtime: {e}\n")
        elif isinstance(e, OSError):
            where = f"{e.filename}: " if e.filename else ""
            _report(log_path, f"slipway-runtime: {where}{e.strerror or e}\n")
        else:
            _report(log_path, f"slipway-runtime: internal error: {type(e).__name__}: {e}\n")
        return 1


def _report(log_path: str | None, message: str) -> None:
    """An error, for ``--log FILE`` (as runc's, so that the caller can tell the runtime's
    words from those of the process it ran on the same stderr), else for stderr."""
    if log_path:
        with open(log_path, "a") as log:
            log.write(message)
    else:
        sys.stderr.write(message)


def _dispatch(root: str | None, verb: str, rest: list[str]) -> int:
    from simulator.runtime import container as c
    from simulator.runtime.state import DEFAULT_ROOT, StateStore

    store = StateStore(root or DEFAULT_ROOT)
    options, positional = parse(rest, verb)

    def need_id() -> str:
        if not positional:
            raise UsageError("a container ID is required")
        return positional[0]

    bundle = _one(options, "--bundle", "-b") or "."
    if verb == "create":
        return c.create(
            store, need_id(), bundle, _one(options, "--pid-file"), _one(options, "--console-socket")
        )
    if verb == "run":
        return c.run(
            store,
            need_id(),
            bundle,
            detach="--detach" in options or "-d" in options,
            pid_file=_one(options, "--pid-file"),
            console_socket=_one(options, "--console-socket"),
        )
    if verb == "start":
        return c.start(store, need_id())
    if verb == "state":
        import json

        sys.stdout.write(json.dumps(c.oci_state(store, need_id()), indent=2) + "\n")
        return 0
    if verb == "kill":
        container_id = need_id()
        return c.kill(store, container_id, positional[1] if len(positional) > 1 else "SIGTERM")
    if verb == "delete":
        return c.delete(store, need_id(), force="--force" in options or "-f" in options)
    if verb in ("pause", "resume"):
        return c.pause(store, need_id(), frozen=verb == "pause")
    if verb == "list":
        fmt = _one(options, "--format", "-f") or "table"
        out = c.list_(store, fmt, quiet="-q" in options or "--quiet" in options)
        sys.stdout.write(out + ("\n" if out else ""))
        return 0
    if verb == "steps":
        sys.stdout.write(c.steps(store, need_id(), as_json="--json" in options) + "\n")
        return 0
    if verb == "exec":
        from simulator.runtime.execute import ExecRequest

        container_id = need_id()
        common = {
            "detach": "-d" in options or "--detach" in options,
            "pid_file": _one(options, "--pid-file"),
            "console_socket": _one(options, "--console-socket"),
        }
        process_file = _one(options, "--process", "-p")
        if process_file:
            opts = ExecRequest.from_process_file(process_file, **common)
        else:
            if len(positional) < 2:
                raise UsageError("a command to execute is required")
            opts = ExecRequest(
                positional[1:],
                tty="-t" in options or "--tty" in options,
                cwd=_one(options, "--cwd"),
                env=options.get("-e", []) + options.get("--env", []),
                user=_one(options, "--user", "-u"),
                **common,
            )
        return c.exec_(store, container_id, opts)
    if verb == "spec":
        return _spec(bundle)
    raise UsageError(f"unknown command {verb!r}\n{USAGE}")


def _spec(bundle: str) -> int:
    import json
    import os

    from simulator.runtime.defaults import container_spec

    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        sys.stderr.write(f"slipway-runtime: File {path} exists. Remove it first\n")
        return 1
    with open(path, "w") as f:
        json.dump(container_spec(["sh"], terminal=True), f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    code = main()
    # Every file the runtime wrote is closed by now; skip the interpreter's teardown,
    # which would add milliseconds to each container's start-to-exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
