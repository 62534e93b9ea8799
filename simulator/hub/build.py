"""``python -m simulator.hub build``: build the base images offline and publish them to the
hub's storage, each under a one-platform index (linux/amd64).

Layers are cached by what made them (the recipe, and the layers beneath), so a second
build publishes from the cache without running mmdebstrap or apt again; the build log
(``build-log.jsonl`` in the cache) records what ran and what was reused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

from simulator.hub import recipes, rootfs
from simulator.hub.rootfs import BuildError, BuildLog

DEFAULT_CACHE = Path("/var/lib/slipway/hub-build")
RECIPE_ANNOTATION = "org.slipway.recipe"


class BuiltLayer:
    """A layer in the build cache: its directory (a lower for later layers) and its blob."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        meta = json.loads((directory / "layer.json").read_text())
        self.diff_id: str = meta["diff_id"]
        self.digest: str = meta["digest"]
        self.size: int = meta["size"]
        self.created: str = meta["created"]
        self.created_by: str = meta["created_by"]

    @property
    def diff(self) -> Path:
        return self.directory / "diff"

    @property
    def blob(self) -> Path:
        return self.directory / "layer.tar.gz"


def _layer_key(layer: recipes.Layer, parent_key: str) -> str:
    material = json.dumps(
        [recipes.RECIPE_VERSION, parent_key, layer.kind, layer.args, layer.after, layer.created_by]
    )
    return hashlib.sha256(material.encode()).hexdigest()


def _layers_of(recipe: recipes.Recipe) -> list[tuple[recipes.Recipe, recipes.Layer]]:
    chain = []
    if recipe.base:
        chain += _layers_of(recipes.by_name(recipe.base))
    chain += [(recipe, layer) for layer in recipe.layers]
    return chain


def _produce(
    layer: recipes.Layer, diff: Path, lowers: list[Path], cache: Path, log: BuildLog
) -> None:
    if layer.kind == "busybox":
        diff.mkdir()
        rootfs.busybox_rootfs(diff, log)
    elif layer.kind == "debian":
        rootfs.debian_rootfs(diff, log, suite=layer.args[0])
    elif layer.kind == "alpine":
        diff.mkdir()
        rootfs.alpine_rootfs(diff, cache / "downloads", log)
    elif layer.kind == "apt":
        rootfs.apt_layer(lowers, diff, list(layer.args), log, after=layer.after)
    elif layer.kind == "npm":
        diff.mkdir()
        rootfs.npm_layer(diff, layer.args[0], cache / "downloads", log)
    else:
        raise BuildError(f"unknown layer kind {layer.kind!r}")


def ensure_layer(
    layer: recipes.Layer, parent_key: str, lowers: list[Path], cache: Path, log: BuildLog
) -> tuple[str, BuiltLayer]:
    """The cached layer for ``layer`` over ``parent_key``, built first if it is missing."""
    from simulator.archive.diff import diff_to_tar
    from simulator.images.oci import rfc3339

    key = _layer_key(layer, parent_key)
    directory = cache / "layers" / key
    if (directory / "layer.json").exists():
        log.record("reused", what=layer.created_by, layer=key)
        return key, BuiltLayer(directory)
    scratch = cache / "layers" / f".tmp-{key}-{os.getpid()}"
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    try:
        _produce(layer, scratch / "diff", lowers, cache, log)
        log.say("  packing the layer")
        with open(scratch / "layer.tar.gz", "wb") as out:
            result = diff_to_tar(scratch / "diff", out, compress=True)
            out.flush()
            os.fsync(out.fileno())
        meta = {
            "diff_id": result.diff_id,
            "digest": result.digest,
            "size": result.size,
            "tar_size": result.tar_size,
            "created": rfc3339(),
            "created_by": layer.created_by,
        }
        (scratch / "layer.json").write_text(json.dumps(meta))
        if directory.exists():
            shutil.rmtree(directory)
        scratch.rename(directory)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    log.record("built", what=layer.created_by, layer=key, digest=meta["digest"])
    return key, BuiltLayer(directory)


def _recipe_stamp(recipe: recipes.Recipe) -> str:
    chain = [recipe]
    while chain[-1].base:
        chain.append(recipes.by_name(chain[-1].base))
    material = json.dumps([recipes.RECIPE_VERSION, [repr(r) for r in chain]])
    return hashlib.sha256(material.encode()).hexdigest()


def _published(storage, recipe: recipes.Recipe, stamp: str) -> bool:  # noqa: ANN001
    from simulator.images.oci import Index, parse_manifest

    repository = f"library/{recipe.name}"
    if not storage.repository_exists(repository):
        return False
    tags = set(storage.tags(repository))
    if not set(recipe.tags) <= tags:
        return False
    for tag in recipe.tags:
        index = parse_manifest(storage.manifest(repository, tag).data)
        if not isinstance(index, Index) or index.annotations.get(RECIPE_ANNOTATION) != stamp:
            return False
    return True


def build_image(recipe: recipes.Recipe, storage, cache: Path, log: BuildLog) -> str:  # noqa: ANN001
    """Build (or reuse) ``recipe`` and publish every tag; returns the index digest."""
    from simulator.images.oci import (
        OCI_INDEX,
        OCI_LAYER_GZIP,
        OCI_MANIFEST,
        Descriptor,
        ImageConfig,
        Index,
        Manifest,
        Platform,
        RunConfig,
    )

    repository = f"library/{recipe.name}"
    stamp = _recipe_stamp(recipe)
    if _published(storage, recipe, stamp):
        log.record("reused image", image=recipe.name)
        log.say(f"{recipe.name}: up to date ({', '.join(recipe.tags)})")
        return storage.resolve(repository, recipe.tags[0])
    log.say(f"{recipe.name}: building {', '.join(recipe.tags)}")
    started = time.monotonic()
    parent_key = ""
    lowers: list[Path] = []
    built: list[tuple[recipes.Recipe, BuiltLayer]] = []
    for owner, layer in _layers_of(recipe):
        parent_key, done = ensure_layer(layer, parent_key, lowers, cache, log)
        lowers.insert(0, done.diff)
        built.append((owner, done))
    config = ImageConfig(
        config=RunConfig(
            env=list(recipe.env),
            cmd=list(recipe.cmd) or None,
            entrypoint=list(recipe.entrypoint) or None,
            working_dir=recipe.working_dir,
            exposed_ports=list(recipe.exposed_ports),
            labels=dict(recipe.labels),
            stop_signal=recipe.stop_signal,
        )
    )
    # History: each recipe's layers, then its metadata steps, base first.
    owners = [owner for owner, _ in built]
    for i, (owner, done) in enumerate(built):
        config.add_layer(done.diff_id, done.created_by, created=done.created)
        last_of_owner = i + 1 == len(built) or owners[i + 1] is not owner
        if last_of_owner:
            for step in owner.metadata:
                config.add_empty_layer(step, created=done.created)
    config.created = built[-1][1].created
    layer_descriptors = []
    for _, done in built:
        with open(done.blob, "rb") as blob:
            storage.put_blob(repository, blob, expected=done.digest)
        layer_descriptors.append(Descriptor(OCI_LAYER_GZIP, done.digest, done.size))
    config_bytes = config.to_bytes()
    storage.put_blob(repository, config_bytes)
    manifest = Manifest(config.descriptor(), tuple(layer_descriptors), OCI_MANIFEST)
    manifest_bytes = manifest.to_bytes()
    manifest_digest = storage.put_manifest(
        repository, _digest(manifest_bytes), manifest_bytes, OCI_MANIFEST
    ).digest
    index = Index(
        (Descriptor.for_bytes(OCI_MANIFEST, manifest_bytes, platform=Platform("linux", "amd64")),),
        OCI_INDEX,
        annotations={RECIPE_ANNOTATION: stamp},
    )
    index_bytes = index.to_bytes()
    for tag in recipe.tags:
        storage.put_manifest(repository, tag, index_bytes, OCI_INDEX)
    log.record("published", image=recipe.name, tags=list(recipe.tags), manifest=manifest_digest)
    size = sum(done.size for _, done in built)
    elapsed = time.monotonic() - started
    log.say(
        f"{recipe.name}: published {', '.join(recipe.tags)} "
        f"({len(built)} layer(s), {size / 1e6:.1f} MB compressed) in {elapsed:.1f}s"
    )
    return _digest(index_bytes)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build(
    root: Path | None = None,
    cache: Path = DEFAULT_CACHE,
    names: list[str] | None = None,
    quiet: bool = False,
) -> dict[str, str]:
    """Build every recipe (or ``names``) into the hub storage at ``root``."""
    from simulator.hub.storage import DEFAULT_ROOT, HubStorage

    wanted = names or [r.name for r in recipes.RECIPES]
    unknown = [n for n in wanted if n not in {r.name for r in recipes.RECIPES}]
    if unknown:
        raise BuildError(f"no recipe for {', '.join(unknown)}")
    log = BuildLog(cache / "build-log.jsonl", quiet=quiet)
    results = {}
    with HubStorage(root or DEFAULT_ROOT) as storage:
        for name in wanted:
            results[name] = build_image(recipes.by_name(name), storage, cache, log)
    return results


def add_command(subcommands: argparse._SubParsersAction) -> None:
    """Add ``build`` to ``python -m simulator.hub``."""
    parser = subcommands.add_parser("build", help="build the base images offline into the hub")
    parser.add_argument("names", nargs="*", help="recipes to build (default: all)")
    parser.add_argument("--root", type=Path, help="the hub's data root (default: serve's)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="the layer cache")
    parser.add_argument("-q", "--quiet", action="store_true", help="print no progress")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        build(args.root, args.cache, args.names, args.quiet)
    except BuildError as e:
        print(f"build failed: {e}", file=sys.stderr)
        return 1
    return 0
