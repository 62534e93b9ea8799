"""The local volume driver: Docker's create, inspect, list, remove and prune, its errors, the
references that keep a used volume, persistence, and the Volume JSON against the v1.50 spec."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from simulator.volumes import (
    ANONYMOUS_LABEL,
    InvalidVolumeRequest,
    Volume,
    VolumeConflict,
    VolumeDriverNotFound,
    VolumeError,
    VolumeForbidden,
    VolumeNotFound,
    VolumeStore,
    VolumeUsage,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC = REPO_ROOT.parent / "shared" / "reference" / "docker-engine-api-v1.50.yaml"
RFC3339_SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)")
API_KEYS = ["CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"]


@pytest.fixture
def store(tmp_path: Path) -> VolumeStore:
    return VolumeStore(tmp_path / "volumes")


def entries(root: Path) -> list[str]:
    return sorted(os.listdir(root))


# -- create, inspect, list, remove ----------------------------------------------------------


def test_create_makes_data_dir_and_metadata_and_inspect_shows_docker_fields(
    store: VolumeStore,
) -> None:
    created = store.create("myvol")
    assert created.Name == "myvol"
    assert created.Driver == "local"
    assert created.Scope == "local"
    assert created.Labels is None and created.Options is None
    assert created.Mountpoint == str(store.root / "myvol" / "_data")
    assert (store.root / "myvol" / "_data").is_dir()
    assert json.loads((store.root / "myvol" / "volume.json").read_text())["Name"] == "myvol"
    assert RFC3339_SECONDS.fullmatch(created.CreatedAt)
    assert store.get("myvol") == created
    assert store.list() == [created]


def test_to_api_has_dockers_keys_in_order_with_null_for_absent_labels_and_options(
    store: VolumeStore,
) -> None:
    body = store.create("myvol").to_api()
    assert list(body) == API_KEYS
    assert body["Labels"] is None and body["Options"] is None
    assert json.dumps(body).count("null") == 2


def test_empty_labels_and_options_stay_empty_objects_not_null(store: VolumeStore) -> None:
    created = store.create("emptymaps", driver_opts={}, labels={})
    assert created.Labels == {} and created.Options == {}
    again = VolumeStore(store.root).get("emptymaps").to_api()
    assert again["Labels"] == {} and again["Options"] == {}


def test_labels_are_kept(store: VolumeStore) -> None:
    created = store.create("myvol", labels={"env": "test", "team": ""})
    assert store.get("myvol").Labels == {"env": "test", "team": ""}
    assert created.to_api()["Labels"] == {"env": "test", "team": ""}


def test_list_is_sorted_by_name(store: VolumeStore) -> None:
    for name in ("zeta", "alpha", "mid"):
        store.create(name)
    assert [volume.Name for volume in store.list()] == ["alpha", "mid", "zeta"]


def test_remove_deletes_the_volume_and_its_data(store: VolumeStore) -> None:
    store.create("myvol")
    (store.data_path("myvol") / "file").write_text("data")
    store.remove("myvol")
    assert entries(store.root) == [".lock"]
    with pytest.raises(VolumeNotFound) as caught:
        store.get("myvol")
    assert caught.value.status == 404
    assert str(caught.value) == caught.value.message == "get myvol: no such volume"


def test_removing_a_missing_volume_is_404_unless_forced(store: VolumeStore) -> None:
    with pytest.raises(VolumeNotFound, match="^get nosuch: no such volume$"):
        store.remove("nosuch")
    store.remove("nosuch", force=True)


@pytest.mark.parametrize("name", ["../etc", "..", "/etc", "a/../../b", "", "x"])
def test_names_that_are_not_volume_names_are_never_found(store: VolumeStore, name: str) -> None:
    with pytest.raises(VolumeNotFound, match=f"^get {re.escape(name)}: no such volume$"):
        store.get(name)
    with pytest.raises(VolumeNotFound):
        store.acquire(name, "c1")
    with pytest.raises(VolumeNotFound):
        store.usage(name)


# -- idempotent and anonymous create ---------------------------------------------------------


def test_creating_an_existing_name_returns_the_existing_volume_and_keeps_its_data(
    store: VolumeStore,
) -> None:
    first = store.create("myvol", labels={"a": "1"})
    (store.data_path("myvol") / "kept").write_text("still here")
    metadata = store.root / "myvol" / "volume.json"
    created = json.loads(metadata.read_text())["CreatedAt"]  # sub-second: a renewal shows
    again = store.create("myvol", labels={"b": "2"}, driver_opts={})
    assert again == first  # Docker ignores the new labels too
    assert json.loads(metadata.read_text())["CreatedAt"] == created
    assert (store.data_path("myvol") / "kept").read_text() == "still here"
    assert len(store.list()) == 1


def test_anonymous_volume_gets_a_64_hex_name_and_the_anonymous_label(store: VolumeStore) -> None:
    anonymous = store.create(None, labels={"app": "web"})
    assert re.fullmatch(r"[0-9a-f]{64}", anonymous.Name)
    assert anonymous.Labels == {"app": "web", ANONYMOUS_LABEL: ""}
    assert store.create("").Labels == {ANONYMOUS_LABEL: ""}  # the API's empty Name
    assert store.create(None).Name != anonymous.Name


def test_create_with_a_reference_holds_the_volume_at_once(store: VolumeStore) -> None:
    store.create(None, reference="c1")
    assert store.prune({"all": ["true"]}) == ([], 0)
    assert len(store.list()) == 1


# -- refusals ------------------------------------------------------------------------------

INVALID_CHARS = (
    "create {name}: {quoted} includes invalid characters for a local volume name, only "
    '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
    "use absolute path"
)
TOO_SHORT = (
    "create {name}: volume name is too short, names should be at least two alphanumeric characters"
)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("x", TOO_SHORT),
        ("7", TOO_SHORT),
        ("x!", INVALID_CHARS.replace("{quoted}", '"x!"')),
        ("_ab", INVALID_CHARS.replace("{quoted}", '"_ab"')),
        ("-ab", INVALID_CHARS.replace("{quoted}", '"-ab"')),
        (".ab", INVALID_CHARS.replace("{quoted}", '".ab"')),
        ("a b", INVALID_CHARS.replace("{quoted}", '"a b"')),
        ("a/b", INVALID_CHARS.replace("{quoted}", '"a/b"')),
        ("..", INVALID_CHARS.replace("{quoted}", '".."')),
        ("é", INVALID_CHARS.replace("{quoted}", '"é"')),  # two bytes, so not "too short"
        ("a\nb", INVALID_CHARS.replace("{quoted}", r'"a\nb"')),
        ('a"b', INVALID_CHARS.replace("{quoted}", r'"a\"b"')),
        ("a\x00b", INVALID_CHARS.replace("{quoted}", r'"a\x00b"')),
    ],
)
def test_invalid_names_are_refused_in_dockers_words(
    store: VolumeStore, name: str, message: str
) -> None:
    with pytest.raises(InvalidVolumeRequest) as caught:
        store.create(name)
    assert caught.value.status == 400
    assert caught.value.message == message.replace("{name}", name)
    assert entries(store.root) == [".lock"]


@pytest.mark.parametrize("name", ["ab", "0x", "a.b-c_d", "My.Volume-2", "v" * 255])
def test_valid_names_are_accepted(store: VolumeStore, name: str) -> None:
    assert store.create(name).Name == name


def test_a_name_too_long_for_the_filesystem_is_a_bad_request(store: VolumeStore) -> None:
    name = "v" * 256
    with pytest.raises(InvalidVolumeRequest, match="file name too long$"):
        store.create(name)


@pytest.mark.parametrize("existing", [False, True])
def test_a_driver_other_than_local_is_not_found(store: VolumeStore, existing: bool) -> None:
    if existing:
        store.create("myvol")
    with pytest.raises(VolumeDriverNotFound) as caught:
        store.create("myvol", driver="foo")
    assert caught.value.status == 404
    assert caught.value.message == (
        'create myvol: error looking up volume plugin foo: plugin "foo" not found'
    )


def test_driver_local_empty_and_none_all_mean_local(store: VolumeStore) -> None:
    assert store.create("a1", driver="local").Driver == "local"
    assert store.create("a2", driver="").Driver == "local"
    assert store.create("a3", driver=None).Driver == "local"


@pytest.mark.parametrize(
    "options",
    [
        {"type": "none", "o": "bind", "device": "/etc"},
        {"device": "/"},
        {"o": "bind"},
        {"type": "tmpfs", "device": "tmpfs", "o": "size=100m"},
        {"type": "nfs", "o": "addr=10.0.0.1", "device": ":/export"},
    ],
)
def test_mount_options_are_refused_with_403(store: VolumeStore, options: dict[str, str]) -> None:
    with pytest.raises(VolumeForbidden) as caught:
        store.create("myvol", driver_opts=options)
    assert caught.value.status == 403
    assert caught.value.message.startswith("create myvol: the local driver's ")
    assert "cannot mount a device or bind a host path" in caught.value.message
    assert entries(store.root) == [".lock"]


def test_mount_options_are_refused_even_for_an_existing_name(store: VolumeStore) -> None:
    store.create("myvol")
    with pytest.raises(VolumeForbidden):
        store.create("myvol", driver_opts={"type": "none", "o": "bind", "device": "/"})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"foo": "bar"}, 'create ov: invalid option: "foo"'),
        ({"size": "10m"}, "create ov: quota size requested but no quota support"),
        ({"size": "lots"}, "create ov: invalid size: 'lots'"),
    ],
)
def test_unknown_options_and_quota_are_bad_requests_in_dockers_words(
    store: VolumeStore, options: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidVolumeRequest) as caught:
        store.create("ov", driver_opts=options)
    assert caught.value.message == message


def test_a_zero_size_option_is_accepted_and_kept(store: VolumeStore) -> None:
    assert store.create("ov", driver_opts={"size": "0"}).Options == {"size": "0"}


def test_error_classes_carry_dockers_status_codes() -> None:
    assert VolumeError("x").status == 500
    assert InvalidVolumeRequest("x").status == 400
    assert VolumeForbidden("x").status == 403
    assert VolumeNotFound("x").status == 404
    assert VolumeDriverNotFound("x").status == 404
    assert VolumeConflict("x").status == 409


# -- references ------------------------------------------------------------------------------


def test_a_volume_in_use_is_not_removed_even_with_force(store: VolumeStore) -> None:
    store.create("myvol")
    store.acquire("myvol", "c1")
    store.acquire("myvol", "c2")
    store.acquire("myvol", "c1")  # acquiring twice holds once
    assert store.references("myvol") == ["c1", "c2"]
    for force in (False, True):
        with pytest.raises(VolumeConflict) as caught:
            store.remove("myvol", force=force)
        assert caught.value.status == 409
        assert caught.value.message == "remove myvol: volume is in use - [c1, c2]"
    store.release("myvol", "c1")
    with pytest.raises(VolumeConflict, match=r"- \[c2\]$"):
        store.remove("myvol")
    store.release("myvol", "c2")
    store.remove("myvol")
    assert store.list() == []


def test_release_of_what_was_never_acquired_is_no_error(store: VolumeStore) -> None:
    store.create("myvol")
    store.release("myvol", "c1")
    store.release("nosuch", "c1")
    assert store.references("myvol") == []


def test_volumes_and_references_survive_a_new_store_instance(tmp_path: Path) -> None:
    first = VolumeStore(tmp_path / "volumes")
    created = first.create("myvol", labels={"env": "test"})
    (first.data_path("myvol") / "file").write_text("persisted")
    first.acquire("myvol", "c1")

    second = VolumeStore(tmp_path / "volumes")  # as after an engine restart
    assert second.get("myvol") == created
    assert second.references("myvol") == ["c1"]
    assert (second.data_path("myvol") / "file").read_text() == "persisted"
    with pytest.raises(VolumeConflict):
        second.remove("myvol")
    second.release("myvol", "c1")
    assert first.references("myvol") == []
    first.remove("myvol")
    assert second.list() == []


# -- list filters ----------------------------------------------------------------------------


@pytest.fixture
def filtered(store: VolumeStore) -> VolumeStore:
    store.create("web-data", labels={"app": "web", "env": "prod"})
    store.create("web-cache", labels={"app": "web", "env": "test"})
    store.create("db", labels=None)
    store.acquire("db", "c1")
    return store


@pytest.mark.parametrize(
    ("filters", "names"),
    [
        ({}, ["db", "web-cache", "web-data"]),
        ({"name": ["web"]}, ["web-cache", "web-data"]),
        ({"name": ["^db$"]}, ["db"]),
        ({"name": ["cache", "data"]}, ["web-cache", "web-data"]),
        ({"name": ["("]}, []),  # a bad regexp matches nothing, as in Docker
        ({"label": ["app"]}, ["web-cache", "web-data"]),
        ({"label": ["app=web", "env=test"]}, ["web-cache"]),
        ({"label": ["env=dev"]}, []),
        ({"dangling": ["true"]}, ["web-cache", "web-data"]),
        ({"dangling": ["1"]}, ["web-cache", "web-data"]),
        ({"dangling": ["false"]}, ["db"]),
        ({"driver": ["local"]}, ["db", "web-cache", "web-data"]),
        ({"driver": ["foo"]}, []),
        ({"name": {"web": True}}, ["web-cache", "web-data"]),  # the legacy map form
    ],
)
def test_list_filters_as_docker_does(
    filtered: VolumeStore, filters: dict[str, Any], names: list[str]
) -> None:
    assert [volume.Name for volume in filtered.list(filters)] == names


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"foo": ["bar"]}, "invalid filter 'foo'"),
        ({"label!": ["a"]}, "invalid filter 'label!'"),
        ({"dangling": ["yes"]}, "invalid filter 'dangling=[yes]'"),
        ({"dangling": ["true", "false"]}, "invalid filter 'dangling=[false true]'"),
        ({"dangling": []}, "invalid filter 'dangling'"),
    ],
)
def test_bad_list_filters_are_bad_requests(
    filtered: VolumeStore, filters: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidVolumeRequest) as caught:
        filtered.list(filters)
    assert caught.value.status == 400
    assert caught.value.message == message


# -- prune -----------------------------------------------------------------------------------


def test_prune_removes_only_unused_anonymous_volumes_by_default(store: VolumeStore) -> None:
    store.create("named")
    unused = store.create(None)
    used = store.create(None)
    store.acquire(used.Name, "c1")
    (store.data_path(unused.Name) / "blob").write_bytes(b"x" * 1000)

    assert store.prune() == ([unused.Name], 1000)
    assert sorted(volume.Name for volume in store.list()) == sorted(["named", used.Name])
    assert not any(name.startswith(".removing-") for name in entries(store.root))


def test_prune_with_all_removes_unused_named_volumes_too(store: VolumeStore) -> None:
    store.create("named")
    store.create("busy")
    store.acquire("busy", "c1")
    anonymous = store.create(None)
    removed, _ = store.prune({"all": ["true"]})
    assert sorted(removed) == sorted(["named", anonymous.Name])
    assert [volume.Name for volume in store.list()] == ["busy"]


def test_prune_with_all_false_is_the_default(store: VolumeStore) -> None:
    store.create("named")
    assert store.prune({"all": ["0"]}) == ([], 0)


def test_prune_narrows_by_label_and_label_not(store: VolumeStore) -> None:
    store.create("keep", labels={"env": "prod"})
    store.create("drop", labels={"env": "test"})
    store.create("plain")
    assert store.prune({"all": ["1"], "label": ["env=test"]}) == (["drop"], 0)
    assert store.prune({"all": ["1"], "label!": ["env=prod"]}) == (["plain"], 0)
    assert [volume.Name for volume in store.list()] == ["keep"]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (
            {"all": ["maybe"]},
            "invalid filter 'all': strconv.ParseBool: parsing \"maybe\": invalid syntax",
        ),
        ({"all": ["1", "0"]}, "invalid filter 'all=[0 1]': only one value is expected"),
        ({"dangling": ["true"]}, "invalid filter 'dangling'"),
    ],
)
def test_bad_prune_filters_are_bad_requests(
    store: VolumeStore, filters: dict[str, Any], message: str
) -> None:
    store.create(None)
    with pytest.raises(InvalidVolumeRequest) as caught:
        store.prune(filters)
    assert caught.value.message == message
    assert len(store.list()) == 1


# -- mountpoint, usage, time ----------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/var/lib/docker/volumes", "/var/lib/docker/volumes/"])
def test_mountpoint_is_reported_under_the_prefix_while_data_stays_under_root(
    tmp_path: Path, prefix: str
) -> None:
    store = VolumeStore(tmp_path / "node1", mountpoint_prefix=prefix)
    created = store.create("myvol")
    assert created.Mountpoint == "/var/lib/docker/volumes/myvol/_data"
    assert store.list()[0].Mountpoint == created.Mountpoint
    assert store.data_path("myvol") == tmp_path / "node1" / "myvol" / "_data"
    assert store.data_path("myvol").is_dir()


def test_usage_counts_file_and_symlink_sizes_and_hard_links_once(store: VolumeStore) -> None:
    store.create("myvol")
    data = store.data_path("myvol")
    assert store.usage("myvol") == 0
    (data / "sub" / "deeper").mkdir(parents=True)
    (data / "a").write_bytes(b"a" * 1000)
    (data / "sub" / "deeper" / "b").write_bytes(b"b" * 234)
    os.link(data / "a", data / "sub" / "a-again")
    (data / "empty").touch()
    os.symlink("/etc/passwd", data / "link")  # counted by its own size, never followed
    assert store.usage("myvol") == 1000 + 234 + len("/etc/passwd")


def test_created_at_is_rfc3339_seconds_in_the_local_zone(tmp_path: Path) -> None:
    script = (
        "import sys; from pathlib import Path; from simulator.volumes import VolumeStore; "
        "print(VolumeStore(Path(sys.argv[1])).create('myvol').CreatedAt)"
    )
    shown = {}
    for zone in ("UTC", "UTC+3"):  # POSIX TZ: UTC+3 is three hours behind UTC
        result = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / zone)],
            env={**os.environ, "TZ": zone, "PYTHONPATH": str(REPO_ROOT)},
            capture_output=True,
            text=True,
            check=True,
        )
        shown[zone] = result.stdout.strip()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", shown["UTC"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-03:00", shown["UTC+3"])


# -- robustness ------------------------------------------------------------------------------


def test_concurrent_creates_of_one_name_end_with_one_volume(tmp_path: Path) -> None:
    root = tmp_path / "volumes"
    shared = VolumeStore(root)
    results: list[Volume] = []
    errors: list[BaseException] = []
    start = threading.Barrier(10)

    def create(own_instance: bool) -> None:
        try:
            store = VolumeStore(root) if own_instance else shared
            start.wait()
            results.append(store.create("shared", labels={"n": "1"}))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=create, args=(i % 2 == 0,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 10 and all(result == results[0] for result in results)
    assert entries(root) == [".lock", "shared"]
    assert entries(root / "shared") == ["_data", "volume.json"]


def test_concurrent_acquires_are_all_recorded(store: VolumeStore) -> None:
    store.create("myvol")
    threads = [threading.Thread(target=store.acquire, args=("myvol", f"c{i}")) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(store.references("myvol")) == sorted(f"c{i}" for i in range(10))


def test_a_new_store_clears_interrupted_creates_and_removals_and_ignores_strays(
    tmp_path: Path,
) -> None:
    root = tmp_path / "volumes"
    VolumeStore(root).create("myvol")
    (root / ".staging-0123").mkdir()
    (root / ".removing-4567" / "_data").mkdir(parents=True)
    (root / "stray").mkdir()  # no volume.json: not a volume
    (root / "notadir").write_text("x")
    store = VolumeStore(root)
    assert entries(root) == [".lock", "myvol", "notadir", "stray"]
    assert [volume.Name for volume in store.list()] == ["myvol"]


# -- the v1.50 spec --------------------------------------------------------------------------


def parse_yaml_subset(lines: list[str]) -> Any:
    """Enough YAML for the spec's definitions: block mappings, quoted and plain scalars, flow
    lists and block scalars (``|``). Anything else fails the test rather than misleading it."""
    position = 0

    def scalar(text: str) -> Any:
        text = text.strip()
        if text.startswith("[") and text.endswith("]"):
            inner = text[1:-1].strip()
            return [scalar(part) for part in inner.split(",")] if inner else []
        if text[:1] in ("'", '"'):
            return text[1:-1]
        return {"true": True, "false": False, "null": None}.get(text, text)

    def indent_of(line: str) -> int:
        return len(line) - len(line.lstrip(" "))

    def block(indent: int) -> dict[str, Any]:
        nonlocal position
        mapping: dict[str, Any] = {}
        while position < len(lines):
            line = lines[position]
            if not line.strip() or line.lstrip().startswith("#"):
                position += 1
                continue
            if indent_of(line) < indent:
                break
            assert indent_of(line) == indent, f"unexpected indentation: {line!r}"
            assert not line.lstrip().startswith("- "), f"block sequences unsupported: {line!r}"
            key, _, rest = line.strip().partition(":")
            position += 1
            if rest.strip() in ("|", ">"):
                while position < len(lines) and (
                    not lines[position].strip() or indent_of(lines[position]) > indent
                ):
                    position += 1
                mapping[key] = "<text>"
            elif rest.strip():
                mapping[key] = scalar(rest)
            else:
                following = next((ln for ln in lines[position:] if ln.strip()), "")
                mapping[key] = block(indent_of(following))
        return mapping

    return block(indent_of(lines[0]))


def spec_definition(name: str) -> dict[str, Any]:
    lines = SPEC.read_text().splitlines()
    start = lines.index("definitions:")
    header = lines.index(f"  {name}:", start)
    end = header + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith("    ")):
        end += 1
    return parse_yaml_subset(lines[header + 1 : end])


def check_against_schema(value: Any, schema: dict[str, Any], where: str) -> None:
    """Types, required keys and no unknown keys. Docker sends null for Labels and Options
    when a volume has none, although the spec marks Labels non-nullable: we follow Docker."""
    if "$ref" in schema:
        schema = spec_definition(schema["$ref"].rsplit("/", 1)[-1])
    kind = schema.get("type")
    if kind == "object":
        assert isinstance(value, dict), where
        properties = schema.get("properties")
        if properties is not None:
            for key in schema.get("required", []):
                assert key in value, f"{where}: {key} is required"
            for key, item in value.items():
                assert key in properties, f"{where}: {key} is not in the spec"
                if item is None and key in ("Labels", "Options"):
                    continue
                check_against_schema(item, properties[key], f"{where}.{key}")
        elif "additionalProperties" in schema:
            for key, item in value.items():
                check_against_schema(item, schema["additionalProperties"], f"{where}.{key}")
    elif kind == "string":
        assert isinstance(value, str), where
        if "enum" in schema:
            assert value in schema["enum"], where
        if schema.get("format") == "dateTime":
            assert RFC3339_SECONDS.fullmatch(value), where
    elif kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), where
    elif kind == "array":
        assert isinstance(value, list), where
        for index, item in enumerate(value):
            check_against_schema(item, schema["items"], f"{where}[{index}]")


def test_volume_json_matches_the_v1_50_spec(store: VolumeStore) -> None:
    assert SPEC.is_file(), f"the Engine API spec is missing: {SPEC}"
    schema = spec_definition("Volume")
    assert set(schema["required"]) <= set(API_KEYS)
    samples = [
        store.create("plain").to_api(),
        store.create("full", labels={"a": "b"}, driver_opts={}).to_api(),
        store.create(None).to_api(),
        store.get("plain").to_api(usage=VolumeUsage(size=store.usage("plain"), ref_count=0)),
    ]
    for sample in samples:
        check_against_schema(sample, schema, sample["Name"])
    assert samples[3]["UsageData"] == {"Size": 0, "RefCount": 0}
    listing = {"Volumes": [volume.to_api() for volume in store.list()], "Warnings": []}
    check_against_schema(listing, spec_definition("VolumeListResponse"), "VolumeListResponse")


def test_create_parameters_cover_the_specs_create_options() -> None:
    properties = spec_definition("VolumeCreateOptions")["properties"]
    # Name, Driver, DriverOpts and Labels map to create(); ClusterVolumeSpec is swarm's.
    assert set(properties) == {"Name", "Driver", "DriverOpts", "Labels", "ClusterVolumeSpec"}
