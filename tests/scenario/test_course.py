"""COURSE.md chapters 3, 5 and 8, command by command, three ways: our CLI against our engine,
the real docker CLI 28 against our engine, and the real CLI against a reference dockerd. Once
IDs, generated names and times are normalised (see course_script), the outputs, error
messages and exit statuses must be the same."""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import re
import urllib.request

import pytest

from tests.engine.conftest import Hub
from tests.scenario.conftest import OURS, REAL, REFERENCE, Configuration
from tests.scenario.course_script import SCRIPT

pytestmark = pytest.mark.timeout(300)

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_KEYS = {
    "application/vnd.oci.image.manifest.v1+json": "OCIManifest",
    "application/vnd.docker.distribution.manifest.v2+json": "SchemaV2Manifest",
}
MANIFEST_INSPECT = next(i for i, s in enumerate(SCRIPT) if s.argv[0] == "manifest")
IMAGES_AFTER_PULL = next(
    i for i, s in enumerate(SCRIPT) if s.argv == ("images", "--digests") and s.shows
)


def _differences(run: Configuration, reference: Configuration) -> list[str]:
    """Each step whose normalised stdout, stderr or exit status differs, with a diff."""
    found = []
    for index, step in enumerate(SCRIPT):
        if index not in run.outcomes or index not in reference.outcomes:
            continue
        for part in ("stdout", "stderr", "status"):
            got = getattr(run.outcomes[index], part)
            expected = getattr(reference.outcomes[index], part)
            if got == expected:
                continue
            diff = difflib.unified_diff(
                str(expected).splitlines(),
                str(got).splitlines(),
                reference.name,
                run.name,
                lineterm="",
            )
            found.append(
                f"step {index + 1} (chapter {step.chapter}) `{step.line}`: {part} differs\n"
                + "\n".join(diff)
            )
    return found


def test_our_cli_prints_what_the_real_cli_prints_against_our_engine(
    course: dict[str, Configuration],
) -> None:
    differences = _differences(course[OURS], course[REAL])
    assert not differences, "\n\n".join(differences)


def test_our_engine_gives_the_real_cli_what_dockerd_gives_it(
    course: dict[str, Configuration],
) -> None:
    differences = _differences(course[REAL], course[REFERENCE])
    assert not differences, "\n\n".join(differences)


def test_our_cli_and_engine_print_what_the_real_cli_and_dockerd_print(
    course: dict[str, Configuration],
) -> None:
    differences = _differences(course[OURS], course[REFERENCE])
    assert not differences, "\n\n".join(differences)


def test_every_run_shows_what_the_course_promises(course: dict[str, Configuration]) -> None:
    """`sh` is PID 1, `stop` gives Exited (137), the file survives a restart and the volume
    outlives voltest, and so on (each step's ``shows``); containers run without --name get
    Docker-style generated names."""
    missing = []
    for config in course.values():
        for index, step in enumerate(SCRIPT):
            outcome = config.outcomes.get(index)
            if outcome is None or step.shows is None:
                continue
            if not re.search(step.shows, outcome.stdout + outcome.stderr):
                missing.append(
                    f"{config.name}: step {index + 1} `{step.line}` does not show "
                    f"{step.shows!r}:\n{outcome.stdout}{outcome.stderr}"
                )
        for label in ("shell", "sleeper"):
            if config.labels.get(label) not in config.containers.names:
                missing.append(f"{config.name}: the {label} container has no generated name")
    assert not missing, "\n\n".join(missing)


def _hub_get(hub: Hub, path: str, accept: tuple[str, ...]) -> bytes:
    request = urllib.request.Request(hub.url + path, headers={"Accept": ", ".join(accept)})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def test_manifest_inspect_lists_the_manifests_behind_the_pulled_digest(
    course: dict[str, Configuration], hub: Hub
) -> None:
    """Our CLI's `docker manifest inspect redis -v` shows, for each platform, the manifest
    that the index at the image's RepoDigest names (the real CLI would ask Docker Hub)."""
    ours = course[OURS]
    index_bytes = _hub_get(
        hub, "/v2/library/redis/manifests/latest", INDEX_TYPES + tuple(MANIFEST_KEYS)
    )
    index_digest = "sha256:" + hashlib.sha256(index_bytes).hexdigest()
    images = ours.outcomes[IMAGES_AFTER_PULL].stdout
    assert re.search(rf"\nredis +latest +{index_digest} ", images), images
    inspected = ours.outcomes[MANIFEST_INSPECT]
    assert inspected.status == 0, inspected.raw_stderr
    entries = json.loads(inspected.raw_stdout)
    index = json.loads(index_bytes)
    assert index["mediaType"] in INDEX_TYPES
    assert [entry["Descriptor"] for entry in entries] == index["manifests"]
    for entry, descriptor in zip(entries, index["manifests"], strict=True):
        digest = descriptor["digest"]
        assert entry["Ref"] == f"docker.io/library/redis:latest@{digest}"
        raw = base64.b64decode(entry["Raw"])
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
        assert raw == _hub_get(hub, f"/v2/library/redis/manifests/{digest}", tuple(MANIFEST_KEYS))
        assert entry[MANIFEST_KEYS[descriptor["mediaType"]]] == json.loads(raw)
