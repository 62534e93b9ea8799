"""A bad config.json fails with a message naming the field, and leaves nothing behind."""

from __future__ import annotations

import copy
import json

import pytest

from tests.conftest import host_snapshot


def _broken(template: dict, change) -> dict:  # noqa: ANN001
    config = copy.deepcopy(template)
    config["process"]["terminal"] = False
    config["process"]["args"] = ["true"]
    change(config)
    return config


CASES = {
    "wrong type for args": (
        lambda c: c["process"].__setitem__("args", "sh -c true"),
        "process.args: expected a list, got a string",
    ),
    "wrong type for uid": (
        lambda c: c["process"]["user"].__setitem__("uid", "root"),
        "process.user.uid: expected an integer, got a string",
    ),
    "missing root": (lambda c: c.pop("root"), "root: required field is missing"),
    "missing cwd": (lambda c: c["process"].pop("cwd"), "process.cwd: required field is missing"),
    "unknown namespace": (
        lambda c: c["linux"]["namespaces"].append({"type": "time-travel"}),
        "linux.namespaces[5].type: unknown namespace type 'time-travel'",
    ),
    "unknown capability": (
        lambda c: c["process"]["capabilities"]["bounding"].append("CAP_TELEPORT"),
        "process.capabilities.bounding: unknown capability 'CAP_TELEPORT'",
    ),
    "bind source that does not exist": (
        lambda c: c["mounts"].append(
            {"destination": "/data", "type": "bind", "source": "/no/such/dir", "options": ["rbind"]}
        ),
        "mounts[7].source: /no/such/dir: no such file or directory",
    ),
    "namespace path that does not exist": (
        lambda c: c["linux"]["namespaces"].__setitem__(
            1, {"type": "network", "path": "/proc/0/ns/net"}
        ),
        "linux.namespaces[1].path: /proc/0/ns/net: No such file or directory",
    ),
    "memory limit of the wrong type": (
        lambda c: c["linux"].__setitem__("resources", {"memory": {"limit": "lots"}}),
        "linux.resources.memory.limit: expected an integer, got a string",
    ),
    "relative mount destination": (
        lambda c: c["mounts"].append({"destination": "data", "type": "tmpfs", "source": "tmpfs"}),
        "mounts[7].destination: 'data' is not an absolute path",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("verb", ["run", "create"])
def test_bad_config_names_the_field_and_leaves_nothing_behind(
    runtime, make_bundle, runc_spec_template, case, verb
):
    change, message = CASES[case]
    bundle = make_bundle(_broken(runc_spec_template, change))
    before = host_snapshot(str(runtime.root))
    result = runtime(verb, runtime.new_id(), "--bundle", str(bundle))
    after = host_snapshot(str(runtime.root))
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert after.leaks_since(before) == {}
    assert runtime("list", "-q").stdout == ""


def test_config_that_is_not_json_is_refused(runtime, tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text('{"ociVersion": "1.0.2", ')
    result = runtime("run", runtime.new_id(), "--bundle", str(bundle))
    assert result.returncode != 0
    assert "config.json is not valid JSON" in result.stderr


def test_missing_config_is_refused(runtime, tmp_path):
    result = runtime("create", runtime.new_id(), "--bundle", str(tmp_path))
    assert result.returncode != 0
    assert "the bundle has no config.json" in result.stderr


def test_a_failure_inside_init_leaves_nothing_behind(runtime, make_bundle, runc_spec_template):
    # The mount fails in the container's init, after cgroups and namespaces exist.
    config = _broken(
        runc_spec_template,
        lambda c: c["mounts"].append({"destination": "/mnt/x", "type": "nosuchfs", "source": "x"}),
    )
    bundle = make_bundle(config)
    before = host_snapshot(str(runtime.root))
    result = runtime("create", runtime.new_id(), "--bundle", str(bundle))
    after = host_snapshot(str(runtime.root))
    assert result.returncode != 0
    assert "mounts[7] (nosuchfs on /mnt/x): No such device" in result.stderr
    assert after.leaks_since(before) == {}


def test_duplicate_and_invalid_ids_are_refused(runtime, make_bundle, runc_spec_template):
    config = _broken(
        runc_spec_template, lambda c: c["process"].__setitem__("args", ["sleep", "30"])
    )
    bundle = make_bundle(config)
    container_id = runtime.new_id()
    assert runtime("create", container_id, "--bundle", str(bundle)).returncode == 0
    duplicate = runtime("create", container_id, "--bundle", str(bundle))
    assert duplicate.returncode != 0
    assert f"container with id exists: {container_id}" in duplicate.stderr
    invalid = runtime("create", "../escape", "--bundle", str(bundle))
    assert invalid.returncode != 0
    assert "invalid id format" in invalid.stderr
    unknown = runtime("kill", container_id, "SIGNOPE")
    assert "unknown signal 'SIGNOPE'" in unknown.stderr
    assert json.loads(runtime("state", container_id).stdout)["status"] == "created"
