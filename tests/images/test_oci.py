"""Image formats: chain IDs, canonical JSON, OCI and Docker manifests and indexes, platform
selection, and image configs with their history and ID."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from simulator.content import InvalidDigest, digest_bytes
from simulator.images import oci
from simulator.images.oci import (
    Descriptor,
    HistoryEntry,
    ImageConfig,
    Index,
    InvalidImageConfig,
    InvalidManifest,
    Manifest,
    NoMatchingManifest,
    Platform,
    RunConfig,
    UnsupportedManifest,
    canonical_json,
    chain_ids,
    parse_image_config,
    parse_image_manifest,
    parse_index,
    parse_manifest,
    rfc3339,
    select_platform,
)

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64
D = "sha256:" + "d" * 64
# Computed with coreutils, not Python: printf '%s %s' "$A" "$B" | sha256sum, and so on.
CHAIN_AB = "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c"
CHAIN_ABC = "sha256:c1377126441fb2f5ec2c21ae2a60255331d639e830f0ee1b40a36e52d4c40588"

OCI_MANIFEST_SAMPLE = f"""{{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {{
    "mediaType": "application/vnd.oci.image.config.v1+json",
    "digest": "{A}",
    "size": 1470
  }},
  "layers": [
    {{
      "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
      "digest": "{B}",
      "size": 3623807
    }},
    {{
      "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
      "digest": "{C}",
      "size": 1024,
      "annotations": {{"org.opencontainers.image.title": "app.tar.gz"}}
    }}
  ],
  "annotations": {{"org.opencontainers.image.created": "2024-05-01T12:00:00Z"}}
}}""".encode()

DOCKER_MANIFEST_SAMPLE = f"""{{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {{
      "mediaType": "application/vnd.docker.container.image.v1+json",
      "size": 7101,
      "digest": "{A}"
   }},
   "layers": [
      {{
         "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
         "size": 29124657,
         "digest": "{B}"
      }},
      {{
         "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
         "size": 1669,
         "digest": "{C}",
         "urls": ["https://layers.invalid/c"]
      }}
   ]
}}""".encode()

OCI_INDEX_SAMPLE = f"""{{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {{
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "{A}",
      "size": 1000,
      "platform": {{"architecture": "amd64", "os": "linux"}}
    }},
    {{
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "{B}",
      "size": 1001,
      "platform": {{"architecture": "arm64", "os": "linux", "variant": "v8"}}
    }},
    {{
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "{C}",
      "size": 840,
      "annotations": {{
        "vnd.docker.reference.digest": "{A}",
        "vnd.docker.reference.type": "attestation-manifest"
      }},
      "platform": {{"architecture": "unknown", "os": "unknown"}}
    }}
  ]
}}""".encode()


def list_entry(digest: str, architecture: str, variant: str = "", os: str = "linux") -> dict:
    platform = {"architecture": architecture, "os": os}
    if variant:
        platform["variant"] = variant
    return {"mediaType": oci.DOCKER_MANIFEST, "size": 525, "digest": digest, "platform": platform}


DOCKER_LIST_SAMPLE = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": oci.DOCKER_MANIFEST_LIST,
        "manifests": [
            list_entry("sha256:" + "1" * 64, "amd64"),
            list_entry("sha256:" + "2" * 64, "arm", "v5"),
            list_entry("sha256:" + "3" * 64, "arm", "v7"),
            list_entry("sha256:" + "4" * 64, "arm64", "v8"),
            list_entry("sha256:" + "5" * 64, "386"),
            list_entry("sha256:" + "6" * 64, "amd64", os="windows"),
        ],
    },
    indent=3,
).encode()

DOCKER_CONFIG_SAMPLE = f"""{{
  "architecture": "amd64",
  "config": {{
    "Hostname": "",
    "ExposedPorts": {{"6379/tcp": {{}}}},
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "Cmd": ["redis-server"],
    "Entrypoint": ["docker-entrypoint.sh"],
    "Volumes": {{"/data": {{}}}},
    "WorkingDir": "/data",
    "Labels": null,
    "OnBuild": null
  }},
  "container": "3a1b2c",
  "container_config": {{"Cmd": ["/bin/sh"]}},
  "created": "2024-01-11T20:18:09.524548389Z",
  "docker_version": "20.10.23",
  "history": [
    {{"created": "2024-01-11T00:00:01.1Z", "created_by": "/bin/sh -c #(nop) ADD file:x in / "}},
    {{"created": "2024-01-11T00:00:02Z", "created_by": "/bin/sh -c #(nop)  CMD [\\"bash\\"]",
      "empty_layer": true}},
    {{"created": "2024-01-11T20:18:09.524548389Z", "created_by": "RUN /bin/sh -c apt-get update",
      "comment": "buildkit.dockerfile.v0"}}
  ],
  "os": "linux",
  "rootfs": {{"type": "layers", "diff_ids": ["{A}", "{B}"]}}
}}""".encode()


# Chain IDs, canonical JSON, times


def test_the_chain_id_of_one_layer_is_its_diff_id() -> None:
    assert chain_ids([A]) == [A]


def test_chain_ids_hash_the_previous_chain_id_a_space_and_the_diff_id() -> None:
    assert chain_ids([A, B]) == [A, CHAIN_AB]
    assert chain_ids([A, B, C]) == [A, CHAIN_AB, CHAIN_ABC]
    expected = "sha256:" + hashlib.sha256(f"{CHAIN_ABC} {D}".encode()).hexdigest()
    assert chain_ids([A, B, C, D])[-1] == expected


def test_chain_ids_depend_on_order() -> None:
    assert chain_ids([B, A])[-1] != chain_ids([A, B])[-1]


def test_no_layers_have_no_chain_ids() -> None:
    assert chain_ids([]) == []


def test_a_malformed_diff_id_is_refused() -> None:
    with pytest.raises(InvalidDigest):
        chain_ids([A, "sha256:nothex"])


def test_canonical_json_is_compact_sorted_and_utf8() -> None:
    data = canonical_json({"b": 1, "a": {"d": [1, 2], "c": "é && <x>"}})
    assert data == '{"a":{"c":"é && <x>","d":[1,2]},"b":1}'.encode()


def test_canonical_json_gives_the_same_bytes_whatever_the_key_order() -> None:
    first = {"os": "linux", "architecture": "amd64", "config": {"Env": ["A=1"], "Cmd": ["sh"]}}
    second = {"config": {"Cmd": ["sh"], "Env": ["A=1"]}, "architecture": "amd64", "os": "linux"}
    assert canonical_json(first) == canonical_json(second)
    assert digest_bytes(canonical_json(first)) == digest_bytes(canonical_json(second))


def test_canonical_json_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_rfc3339_writes_utc_like_go() -> None:
    assert rfc3339(datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)) == "2024-05-01T12:00:00Z"
    assert rfc3339(datetime(2024, 5, 1, 12, 0, 0, 120000)) == "2024-05-01T12:00:00.12Z"
    two_hours_east = timezone(timedelta(hours=2))
    assert rfc3339(datetime(2024, 5, 1, 14, 0, tzinfo=two_hours_east)) == "2024-05-01T12:00:00Z"
    assert oci.is_rfc3339(rfc3339())


@pytest.mark.parametrize(
    "text", ["", "2024-05-01", "2024-05-01 12:00:00Z", "2024-05-01T12:00:00", "yesterday"]
)
def test_a_time_that_is_not_rfc3339_is_refused_in_history(text: str) -> None:
    assert not oci.is_rfc3339(text)
    with pytest.raises(InvalidImageConfig, match="RFC 3339"):
        HistoryEntry(created=text, created_by="RUN true")


# Descriptors


def test_a_descriptor_for_bytes_has_their_digest_and_size() -> None:
    descriptor = Descriptor.for_bytes(oci.OCI_CONFIG, b"hello")
    assert descriptor.digest == digest_bytes(b"hello")
    assert descriptor.size == 5
    assert descriptor.to_dict() == {
        "mediaType": oci.OCI_CONFIG,
        "digest": digest_bytes(b"hello"),
        "size": 5,
    }


def test_a_descriptor_writes_its_platform_and_annotations_when_it_has_them() -> None:
    descriptor = Descriptor.for_bytes(
        oci.OCI_MANIFEST,
        b"{}",
        platform=Platform("linux", "arm64", "v8"),
        annotations={"org.opencontainers.image.ref.name": "latest"},
    )
    as_dict = descriptor.to_dict()
    assert as_dict["platform"] == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    assert as_dict["annotations"] == {"org.opencontainers.image.ref.name": "latest"}
    assert Descriptor.from_dict(as_dict) == descriptor


def test_a_platform_reads_and_writes_os_version_and_features() -> None:
    obj = {
        "architecture": "amd64",
        "os": "windows",
        "os.version": "10.0.17763.1",
        "os.features": ["win32k"],
    }
    platform = Platform.from_dict(obj)
    assert platform == Platform("windows", "amd64", "", "10.0.17763.1", ("win32k",))
    assert platform.to_dict() == obj
    assert str(Platform("linux", "arm", "v7")) == "linux/arm/v7"


# Manifests and indexes


def test_an_oci_manifest_is_read_into_its_config_and_layers() -> None:
    manifest = parse_manifest(OCI_MANIFEST_SAMPLE)
    assert isinstance(manifest, Manifest)
    assert manifest.media_type == oci.OCI_MANIFEST
    assert manifest.config == Descriptor(oci.OCI_CONFIG, A, 1470)
    assert [layer.digest for layer in manifest.layers] == [B, C]
    assert [layer.size for layer in manifest.layers] == [3623807, 1024]
    assert manifest.layers[1].annotations == {"org.opencontainers.image.title": "app.tar.gz"}
    assert manifest.annotations == {"org.opencontainers.image.created": "2024-05-01T12:00:00Z"}
    assert manifest.is_image


def test_a_docker_schema2_manifest_is_read_the_same_way() -> None:
    manifest = parse_manifest(DOCKER_MANIFEST_SAMPLE, oci.DOCKER_MANIFEST)
    assert isinstance(manifest, Manifest)
    assert manifest.media_type == oci.DOCKER_MANIFEST
    assert manifest.config == Descriptor(oci.DOCKER_CONFIG, A, 7101)
    assert [(layer.media_type, layer.digest) for layer in manifest.layers] == [
        (oci.DOCKER_LAYER_GZIP, B),
        (oci.DOCKER_FOREIGN_LAYER_GZIP, C),
    ]
    assert manifest.layers[1].urls == ("https://layers.invalid/c",)
    assert manifest.is_image


def test_an_oci_index_lists_its_platforms() -> None:
    index = parse_manifest(OCI_INDEX_SAMPLE)
    assert isinstance(index, Index)
    assert index.media_type == oci.OCI_INDEX
    assert [str(entry.platform) for entry in index.manifests] == [
        "linux/amd64",
        "linux/arm64/v8",
        "unknown/unknown",
    ]
    assert index.manifests[2].annotations["vnd.docker.reference.type"] == "attestation-manifest"


def test_a_docker_manifest_list_is_read_as_an_index() -> None:
    index = parse_index(DOCKER_LIST_SAMPLE)
    assert index.media_type == oci.DOCKER_MANIFEST_LIST
    assert len(index.manifests) == 6
    assert index.manifests[2].platform == Platform("linux", "arm", "v7")


def test_the_content_type_decides_when_the_document_has_no_media_type() -> None:
    document = json.loads(OCI_MANIFEST_SAMPLE)
    del document["mediaType"]
    data = json.dumps(document).encode()
    assert parse_manifest(data, oci.OCI_MANIFEST).media_type == oci.OCI_MANIFEST
    assert parse_manifest(data, f"{oci.OCI_MANIFEST}; charset=utf-8").media_type == oci.OCI_MANIFEST
    # with no usable type at all, the shape decides (OCI allows leaving mediaType out)
    assert parse_manifest(data, "application/json").media_type == oci.OCI_MANIFEST
    index = json.loads(OCI_INDEX_SAMPLE)
    del index["mediaType"]
    assert isinstance(parse_manifest(json.dumps(index).encode()), Index)


def test_manifests_we_write_read_back_the_same() -> None:
    manifest = Manifest(
        config=Descriptor.for_bytes(oci.OCI_CONFIG, b"{}"),
        layers=(Descriptor(oci.OCI_LAYER_GZIP, B, 10), Descriptor(oci.OCI_LAYER_GZIP, C, 20)),
        annotations={"org.opencontainers.image.ref.name": "latest"},
    )
    data = manifest.to_bytes()
    assert data == canonical_json(json.loads(data))
    assert parse_manifest(data) == manifest
    assert json.loads(data)["schemaVersion"] == 2
    index = Index(
        manifests=(
            Descriptor(oci.OCI_MANIFEST, digest_bytes(data), len(data), Platform("linux", "amd64")),
        )
    )
    assert parse_manifest(index.to_bytes()) == index


def test_the_typed_readers_refuse_the_other_kind() -> None:
    with pytest.raises(InvalidManifest, match="found an index"):
        parse_image_manifest(OCI_INDEX_SAMPLE)
    with pytest.raises(InvalidManifest, match="found a manifest"):
        parse_index(OCI_MANIFEST_SAMPLE)


def changed(sample: bytes, change) -> bytes:  # noqa: ANN001
    document = json.loads(sample)
    change(document)
    return json.dumps(document).encode()


BAD_MANIFESTS = {
    "not json": (b"{not json", None, InvalidManifest, "not JSON"),
    "not an object": (b"[1, 2]", None, InvalidManifest, "expected a JSON object"),
    "not utf-8": (b"\xff\xfe{}", None, InvalidManifest, "not JSON"),
    "schema 1": (
        b'{"schemaVersion": 1, "name": "library/redis", "fsLayers": []}',
        None,
        UnsupportedManifest,
        "schema 1 support has been removed",
    ),
    "schema 1 by content type": (
        b"{}",
        oci.DOCKER_MANIFEST_SCHEMA1_SIGNED,
        InvalidManifest,
        "unsupported schemaVersion None",
    ),
    "schema 3": (
        changed(OCI_MANIFEST_SAMPLE, lambda d: d.update(schemaVersion=3)),
        None,
        InvalidManifest,
        "unsupported schemaVersion 3",
    ),
    "unknown media type": (
        changed(OCI_MANIFEST_SAMPLE, lambda d: d.update(mediaType="application/x-tar")),
        None,
        UnsupportedManifest,
        "unsupported manifest media type and no default available: application/x-tar",
    ),
    "media type disagrees with content type": (
        DOCKER_MANIFEST_SAMPLE,
        oci.OCI_MANIFEST,
        InvalidManifest,
        f"should be '{oci.OCI_MANIFEST}' not '{oci.DOCKER_MANIFEST}'",
    ),
    "index with layers": (
        changed(OCI_INDEX_SAMPLE, lambda d: d.update(layers=[])),
        None,
        InvalidManifest,
        "expected an index but found a manifest",
    ),
    "manifest with manifests": (
        changed(OCI_MANIFEST_SAMPLE, lambda d: d.update(manifests=[])),
        None,
        InvalidManifest,
        "expected a manifest but found an index",
    ),
    "no config": (
        changed(OCI_MANIFEST_SAMPLE, lambda d: d.pop("config")),
        None,
        InvalidManifest,
        "config is missing",
    ),
    "layers not a list": (
        changed(OCI_MANIFEST_SAMPLE, lambda d: d.update(layers={})),
        None,
        InvalidManifest,
        "layers must be a list",
    ),
    "bad layer digest": (
        changed(OCI_MANIFEST_SAMPLE, lambda d: d["layers"][1].update(digest="sha256:abc")),
        None,
        InvalidManifest,
        'layers[1].digest: invalid digest "sha256:abc"',
    ),
    "missing config digest": (
        changed(OCI_MANIFEST_SAMPLE, lambda d: d["config"].pop("digest")),
        None,
        InvalidManifest,
        'config.digest: invalid digest "None"',
    ),
    "negative size": (
        changed(OCI_MANIFEST_SAMPLE, lambda d: d["layers"][0].update(size=-1)),
        None,
        InvalidManifest,
        "layers[0].size: expected a size in bytes",
    ),
    "size as a boolean": (
        changed(OCI_MANIFEST_SAMPLE, lambda d: d["layers"][0].update(size=True)),
        None,
        InvalidManifest,
        "layers[0].size",
    ),
    "size as a string": (
        changed(OCI_MANIFEST_SAMPLE, lambda d: d["config"].update(size="1470")),
        None,
        InvalidManifest,
        "config.size",
    ),
    "no media type on a layer": (
        changed(OCI_MANIFEST_SAMPLE, lambda d: d["layers"][0].pop("mediaType")),
        None,
        InvalidManifest,
        "layers[0].mediaType",
    ),
    "platform without os": (
        changed(OCI_INDEX_SAMPLE, lambda d: d["manifests"][0]["platform"].pop("os")),
        None,
        InvalidManifest,
        "manifests[0].platform",
    ),
    "annotations not strings": (
        changed(OCI_MANIFEST_SAMPLE, lambda d: d.update(annotations={"a": 1})),
        None,
        InvalidManifest,
        "annotations: expected an object of strings",
    ),
}


@pytest.mark.parametrize("case", BAD_MANIFESTS)
def test_a_bad_manifest_is_refused_with_a_reason(case: str) -> None:
    data, content_type, error, message = BAD_MANIFESTS[case]
    with pytest.raises(error) as caught:
        parse_manifest(data, content_type)
    assert message in str(caught.value)


def test_layer_media_types_say_how_they_are_compressed() -> None:
    assert oci.LAYER_COMPRESSION[oci.OCI_LAYER_GZIP] == "gzip"
    assert oci.LAYER_COMPRESSION[oci.DOCKER_LAYER_GZIP] == "gzip"
    assert oci.LAYER_COMPRESSION[oci.OCI_LAYER_ZSTD] == "zstd"
    assert oci.LAYER_COMPRESSION[oci.OCI_LAYER] == ""
    assert oci.OCI_CONFIG not in oci.LAYER_MEDIA_TYPES
    assert set(oci.MANIFEST_ACCEPT) == oci.MANIFEST_MEDIA_TYPES | oci.INDEX_MEDIA_TYPES


# Platforms


def test_select_platform_picks_linux_amd64_by_default() -> None:
    assert select_platform(parse_index(OCI_INDEX_SAMPLE)).digest == A
    assert select_platform(parse_index(DOCKER_LIST_SAMPLE)).digest == "sha256:" + "1" * 64


def test_select_platform_fills_in_an_architectures_default_variant() -> None:
    docker_list = parse_index(DOCKER_LIST_SAMPLE)
    assert select_platform(docker_list, arch="arm64").digest == "sha256:" + "4" * 64
    assert select_platform(docker_list, arch="aarch64").digest == "sha256:" + "4" * 64
    assert select_platform(docker_list, arch="arm").digest == "sha256:" + "3" * 64
    assert select_platform(docker_list, arch="arm", variant="v5").digest == "sha256:" + "2" * 64
    assert select_platform(docker_list, arch="x86_64").digest == "sha256:" + "1" * 64
    assert select_platform(docker_list, os="windows").digest == "sha256:" + "6" * 64


def test_select_platform_takes_any_variant_when_none_was_asked_for() -> None:
    index = Index(manifests=(Descriptor(oci.OCI_MANIFEST, B, 1, Platform("linux", "amd64", "v3")),))
    assert select_platform(index).digest == B
    with pytest.raises(NoMatchingManifest):
        select_platform(index, variant="v2")


def test_select_platform_never_picks_an_attestation() -> None:
    with pytest.raises(NoMatchingManifest):
        select_platform(parse_index(OCI_INDEX_SAMPLE), os="unknown", arch="s390x")


def test_an_entry_without_a_platform_is_the_last_resort() -> None:
    anywhere = Descriptor(oci.OCI_MANIFEST, C, 1)
    exact = Descriptor(oci.OCI_MANIFEST, A, 1, Platform("linux", "amd64"))
    assert select_platform(Index(manifests=(anywhere, exact))).digest == A
    assert select_platform(Index(manifests=(anywhere,)), arch="riscv64").digest == C


def test_a_missing_platform_fails_in_dockers_words() -> None:
    with pytest.raises(NoMatchingManifest) as caught:
        select_platform(parse_index(DOCKER_LIST_SAMPLE), arch="s390x")
    assert str(caught.value) == "no matching manifest for linux/s390x in the manifest list entries"
    with pytest.raises(NoMatchingManifest) as caught:
        select_platform(parse_index(DOCKER_LIST_SAMPLE), arch="arm", variant="v6")
    assert str(caught.value) == (
        "no matching manifest for linux/arm/v6 in the manifest list entries"
    )


# Image configs


def built_config() -> ImageConfig:
    config = ImageConfig(
        created="2024-05-01T12:00:03Z",
        config=RunConfig(
            env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            cmd=["redis-server"],
            entrypoint=["docker-entrypoint.sh"],
            working_dir="/data",
            exposed_ports=["6379"],
            labels={"org.opencontainers.image.source": "slipway"},
            user="redis",
        ),
    )
    config.add_layer(A, "mmdebstrap --variant=minbase bookworm", created="2024-05-01T12:00:00Z")
    config.add_empty_layer('CMD ["bash"]', created="2024-05-01T12:00:01Z")
    config.add_layer(
        B,
        "apt-get install redis-server",
        created="2024-05-01T12:00:02Z",
        comment="redis from Debian",
    )
    config.add_empty_layer("EXPOSE 6379/tcp", created="2024-05-01T12:00:03Z")
    return config


def test_an_image_config_has_the_oci_fields() -> None:
    written = json.loads(built_config().to_bytes())
    assert written["architecture"] == "amd64"
    assert written["os"] == "linux"
    assert written["created"] == "2024-05-01T12:00:03Z"
    assert written["rootfs"] == {"type": "layers", "diff_ids": [A, B]}
    assert written["config"] == {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["redis-server"],
        "Entrypoint": ["docker-entrypoint.sh"],
        "WorkingDir": "/data",
        "ExposedPorts": {"6379/tcp": {}},
        "Labels": {"org.opencontainers.image.source": "slipway"},
        "User": "redis",
    }


def test_every_history_entry_has_created_and_only_metadata_steps_are_empty_layers() -> None:
    history = json.loads(built_config().to_bytes())["history"]
    assert history == [
        {"created": "2024-05-01T12:00:00Z", "created_by": "mmdebstrap --variant=minbase bookworm"},
        {"created": "2024-05-01T12:00:01Z", "created_by": 'CMD ["bash"]', "empty_layer": True},
        {
            "created": "2024-05-01T12:00:02Z",
            "created_by": "apt-get install redis-server",
            "comment": "redis from Debian",
        },
        {"created": "2024-05-01T12:00:03Z", "created_by": "EXPOSE 6379/tcp", "empty_layer": True},
    ]


def test_history_entries_get_the_current_time_when_none_is_given() -> None:
    config = ImageConfig()
    before = datetime.now(UTC).replace(microsecond=0)
    config.add_layer(A, "COPY . /app")
    config.add_empty_layer("ENV A=1")
    for entry in json.loads(config.to_bytes())["history"]:
        created = datetime.fromisoformat(entry["created"].replace("Z", "+00:00"))
        assert created >= before


def test_the_image_id_is_the_digest_of_the_config_bytes() -> None:
    config = built_config()
    data = config.to_bytes()
    assert config.image_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert oci.image_id(data) == config.image_id
    assert config.descriptor() == Descriptor(oci.OCI_CONFIG, config.image_id, len(data))
    assert config.descriptor(oci.DOCKER_CONFIG).media_type == oci.DOCKER_CONFIG
    assert built_config().image_id == config.image_id  # the same config, the same ID


def test_the_image_id_changes_with_any_metadata() -> None:
    changed_config = built_config()
    changed_config.config.env.append("DEBUG=1")
    assert changed_config.image_id != built_config().image_id


def test_an_image_config_knows_its_chain_ids_and_platform() -> None:
    config = built_config()
    assert config.chain_ids() == [A, CHAIN_AB]
    assert config.platform == Platform("linux", "amd64")


def test_a_config_we_write_reads_back_the_same() -> None:
    config = built_config()
    assert parse_image_config(config.to_bytes()) == config
    assert parse_image_config(config.to_bytes()).to_bytes() == config.to_bytes()


def test_a_docker_made_config_is_read() -> None:
    config = parse_image_config(DOCKER_CONFIG_SAMPLE)
    assert config.diff_ids == [A, B]
    assert config.created == "2024-01-11T20:18:09.524548389Z"
    assert config.config.cmd == ["redis-server"]
    assert config.config.entrypoint == ["docker-entrypoint.sh"]
    assert config.config.exposed_ports == ["6379/tcp"]
    assert config.config.volumes == ["/data"]
    assert config.config.labels == {}
    assert [entry.empty_layer for entry in config.history] == [False, True, False]
    assert config.history[2].comment == "buildkit.dockerfile.v0"
    # its ID is the digest of the bytes as stored, not of our re-serialisation
    assert oci.image_id(DOCKER_CONFIG_SAMPLE) == digest_bytes(DOCKER_CONFIG_SAMPLE)


def test_a_history_entry_without_created_takes_the_images_time() -> None:
    document = json.loads(DOCKER_CONFIG_SAMPLE)
    del document["history"][0]["created"]
    config = parse_image_config(json.dumps(document).encode())
    assert config.history[0].created == "2024-01-11T20:18:09.524548389Z"
    assert json.loads(config.to_bytes())["history"][0]["created"] == config.created


def test_run_config_leaves_out_what_is_empty_and_keeps_an_empty_cmd() -> None:
    assert RunConfig().to_dict() == {}
    assert RunConfig(cmd=[]).to_dict() == {"Cmd": []}  # CMD [] is not the same as no CMD
    assert RunConfig(exposed_ports=["53/udp", "80"]).to_dict() == {
        "ExposedPorts": {"53/udp": {}, "80/tcp": {}}
    }
    full = RunConfig(
        volumes=["/data"],
        stop_signal="SIGQUIT",
        shell=["/bin/bash", "-c"],
        on_build=["RUN make"],
        healthcheck={"Test": ["CMD", "true"], "Interval": 30000000000},
    )
    assert RunConfig.from_dict(full.to_dict()) == full


def test_too_many_layer_steps_in_history_is_refused_in_dockers_words() -> None:
    document = json.loads(DOCKER_CONFIG_SAMPLE)
    document["rootfs"]["diff_ids"] = [A]
    with pytest.raises(InvalidImageConfig, match="^too many non-empty layers in History section$"):
        parse_image_config(json.dumps(document).encode())
    config = ImageConfig(created="2024-05-01T12:00:00Z")
    config.history.append(HistoryEntry("2024-05-01T12:00:00Z", "RUN true"))
    with pytest.raises(InvalidImageConfig):
        config.to_bytes()


def test_a_bad_diff_id_is_refused_when_adding_a_layer() -> None:
    with pytest.raises(InvalidImageConfig, match="rootfs.diff_ids"):
        ImageConfig().add_layer("sha256:short", "RUN true")


BAD_CONFIGS = {
    "not json": (b"nope", "not JSON"),
    "a list": (b"[]", "expected a JSON object"),
    "no os": (lambda d: d.pop("os"), "architecture and os are required"),
    "rootfs of another type": (lambda d: d["rootfs"].update(type="zfs"), "rootfs"),
    "bad diff id": (lambda d: d["rootfs"].update(diff_ids=["sha256:zz"]), "rootfs.diff_ids"),
    "env not strings": (lambda d: d["config"].update(Env=[1]), "config.Env"),
    "cmd a string": (lambda d: d["config"].update(Cmd="redis-server"), "config.Cmd"),
    "ports a list": (lambda d: d["config"].update(ExposedPorts=["80/tcp"]), "ExposedPorts"),
    "bad created": (lambda d: d.update(created="last tuesday"), "RFC 3339"),
    "bad history time": (lambda d: d["history"][0].update(created="soon"), "RFC 3339"),
    "empty_layer a string": (lambda d: d["history"][1].update(empty_layer="yes"), "empty_layer"),
    "history an object": (lambda d: d.update(history={}), "history"),
}


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_a_bad_image_config_is_refused_with_a_reason(case: str) -> None:
    change, message = BAD_CONFIGS[case]
    data = change if isinstance(change, bytes) else changed(DOCKER_CONFIG_SAMPLE, change)
    with pytest.raises(InvalidImageConfig) as caught:
        parse_image_config(data)
    assert message in str(caught.value)
