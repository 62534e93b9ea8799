"""The step log: what the runtime did to the kernel for one container, in order.

Each line of the log file is a JSON object ``{"time", "kind", "text"}``. The text is written
for a learner: Slipway's kernel view shows it as it stands.
"""

from __future__ import annotations

import json
import os
import time


class StepLog:
    """Appends steps to a file. The descriptor survives fork, pivot_root and setns."""

    def __init__(self, path: str | None) -> None:
        self.fd = -1
        if path:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)

    def __call__(self, kind: str, text: str) -> None:
        self.step(kind, text)

    def step(self, kind: str, text: str) -> None:
        if self.fd < 0:
            return
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
        line = json.dumps({"time": stamp, "kind": kind, "text": text}) + "\n"
        os.write(self.fd, line.encode())

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def read(path: str) -> list[dict]:
    """All steps recorded in ``path``; a torn last line is skipped."""
    steps = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    steps.append(json.loads(line))
                except ValueError:
                    continue
    except FileNotFoundError:
        pass
    return steps


def format_steps(steps: list[dict]) -> str:
    """The steps as numbered lines, for a terminal."""
    lines = []
    for n, s in enumerate(steps, 1):
        clock = s.get("time", "")[11:23]
        lines.append(f"{n:3d}  {clock}  {s.get('kind', ''):<11} {s.get('text', '')}")
    return "\n".join(lines)
