"""Fixtures for the builder's tests: the engine tests' hub, engines and real docker CLI, our
own CLI against the same engine, and the course's two apps written into a build context."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine import conftest as engine_tests
from tests.engine.conftest import RunningEngine
from tests.support.cli import OUR_CLI, CliRun, cli_for

# The engine tests' fixtures, for this directory's tests.
hub = engine_tests.hub
start_engine = engine_tests.start_engine
engine = engine_tests.engine
docker_cli = engine_tests.docker_cli
docker = engine_tests.docker
__all__ = ["CliRun", "docker", "docker_cli", "engine", "hub", "start_engine"]

BUILD_TIMEOUT = 300  # seconds: a bound against hangs for a cold build, never a measure

# The course's node web app, from an image that has node (apk can't reach a mirror offline);
# its one dependency is vendored, and .npmrc keeps npm from reaching for the network.
NODE_APP = {
    "Dockerfile": """FROM node:18
LABEL maintainer="learner@example.com"
RUN mkdir -p /usr/src/notes && echo "built by the course" > /usr/src/notes/README
COPY . /src
WORKDIR /src
RUN npm install
EXPOSE 8080
ENTRYPOINT ["node", "./app.js"]
""",
    "app.js": """const http = require('http');
const greeting = require('greeting');
http.createServer((req, res) => { res.end(greeting('Docker') + '\\n'); }).listen(8080);
""",
    "package.json": '{"name": "web", "version": "1.0.0", "private": true, '
    '"dependencies": {"greeting": "file:vendor/greeting"}}\n',
    ".npmrc": "offline=true\naudit=false\nfund=false\nupdate-notifier=false\n",
    "vendor/greeting/package.json": '{"name": "greeting", "version": "1.0.0", '
    '"main": "index.js"}\n',
    "vendor/greeting/index.js": "module.exports = (name) => 'Hello, ' + name + '!';\n",
}

# The course's multi-stage app, with our Go image; the binaries are static (CGO off), as
# they must be to run FROM scratch.
MULTI_APP = {
    "Dockerfile": """FROM golang:1.19 AS base
ENV CGO_ENABLED=0
WORKDIR /src
COPY go.mod go.sum .
RUN go mod download
COPY . .

FROM base AS build-client
RUN go build -o /bin/client ./cmd/client

FROM base AS build-server
RUN go build -o /bin/server ./cmd/server

FROM scratch AS prod
COPY --from=build-client /bin/client /bin/
COPY --from=build-server /bin/server /bin/
ENTRYPOINT [ "/bin/server" ]
""",
    "go.mod": "module example.com/multi\n\ngo 1.19\n",
    "go.sum": "",
    "cmd/client/main.go": 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("client") }\n',
    "cmd/server/main.go": 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("server") }\n',
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (path -> text) under ``root``; return ``root``."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def slipway(engine: RunningEngine, tmp_path: Path) -> CliRun:
    """Slipway's own docker CLI against ``engine``."""
    return cli_for(OUR_CLI, engine.host, tmp_path / "ours", timeout=BUILD_TIMEOUT)


@pytest.fixture
def real(engine: RunningEngine, docker_cli: str, tmp_path: Path) -> CliRun:
    """The real docker CLI 28 against ``engine`` (its legacy builder path)."""
    return cli_for(docker_cli, engine.host, tmp_path / "real", timeout=BUILD_TIMEOUT)
