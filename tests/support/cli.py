"""Running a docker CLI (ours or the real one) against an engine, as a learner would: a HOME
and a config directory of its own, stdin empty unless the test gives some."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
OUR_CLI = (sys.executable, "-m", "simulator.cli")
CliRun = Callable[..., subprocess.CompletedProcess[str]]


def cli_for(
    command: tuple[str, ...] | list[str] | str, host: str, home: Path, timeout: float = 120
) -> CliRun:
    """Run a docker CLI against ``host`` with a HOME and config directory of its own under
    ``home``, in ``home`` unless ``cwd`` is given (stdin empty unless ``input`` is given;
    ``binary`` keeps bytes; ``timeout`` is a bound against hangs, never a measure)."""
    config = home / "docker-config"
    config.mkdir(parents=True, exist_ok=True)
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "DOCKER_HOST": host,
        "DOCKER_CONFIG": str(config),
        "PYTHONPATH": str(REPO_ROOT),
    }
    argv = [command] if isinstance(command, str) else list(command)
    default_timeout = timeout

    def run(
        *arguments: str,
        input: str | bytes | None = None,
        binary: bool = False,
        cwd: Path | None = None,
        timeout: float = default_timeout,
    ) -> subprocess.CompletedProcess:
        data: str | bytes = input if input is not None else (b"" if binary else "")
        return subprocess.run(
            [*argv, *arguments],
            env=environment,
            input=data,
            capture_output=True,
            text=not binary,
            timeout=timeout,
            cwd=cwd or home,
        )

    run.environment = environment  # type: ignore[attr-defined]
    run.config_dir = config  # type: ignore[attr-defined]
    return run
