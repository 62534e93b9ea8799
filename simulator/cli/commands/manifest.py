"""``docker manifest inspect``: a manifest or manifest list read from the registry itself, as
Docker's CLI reads it (not through the engine). Names on docker.io go to the engine's
registry mirrors, which in a classroom are Slipway's hub."""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from simulator.cli.client import DaemonError
from simulator.cli.commands.images import go_reformat
from simulator.cli.flags import Args, Command, Context, Flag, Options, StatusError, UsageError
from simulator.cli.formatting import DEFAULT_DOMAIN
from simulator.cli.progress import ImageReference, ReferenceError, credentials, parse_reference
from simulator.cli.template import GoStruct, go_json

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPES = (DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX)
DOCKER_HUB = f"https://registry-1.{DEFAULT_DOMAIN}"
TIMEOUT = 30
PLATFORM_FIELDS = ("architecture", "os", "os.version", "os.features", "variant")
EXPERIMENTAL = (
    "EXPERIMENTAL:\n"
    "  {} is an experimental feature.\n"
    "  Experimental features provide early access to product functionality. These\n"
    "  features may change between releases without warning, or can be removed from a\n"
    "  future release. Learn more about experimental features in our documentation:\n"
    "  https://docs.docker.com/go/experimental/"
)
MANIFEST_DESCRIPTION = (
    "The **docker manifest** command has subcommands for managing image manifests and\n"
    "manifest lists. A manifest list allows you to use one name to refer to the same image\n"
    "built for multiple architectures.\n\n"
    "To see help for a subcommand, use:\n\n"
    "    docker manifest CMD --help\n\n"
    "For full details on using docker manifest lists, see the registry v2 specification.\n\n"
    + EXPERIMENTAL.format("docker manifest")
)


class _Unavailable(Exception):
    """This endpoint doesn't have the manifest (or won't say): try the next one."""


@dataclass
class ImageManifest:
    """One manifest as Docker's CLI holds it: the reference it was read under, its
    descriptor (with the platform), and its bytes."""

    ref: str
    media_type: str
    raw: bytes
    platform: GoStruct

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.raw).hexdigest()

    def descriptor(self) -> GoStruct:
        return GoStruct(
            mediaType=self.media_type,
            digest=self.digest,
            size=len(self.raw),
            platform=self.platform,
        )

    def verbose_json(self) -> str:
        """types.ImageManifest as json.Marshal writes it, before indentation."""
        key = "SchemaV2Manifest" if self.media_type == DOCKER_MANIFEST else "OCIManifest"
        head = go_json(
            GoStruct(
                Ref=self.ref,
                Descriptor=self.descriptor(),
                Raw=base64.b64encode(self.raw).decode(),
            ),
            escape_html=True,
        )
        return head[:-1] + f',"{key}":' + go_reformat(self.raw.decode(), None) + "}"


def _platform(value: Any) -> GoStruct:
    """An OCI platform's members, in their order (the optional ones only when set)."""
    value = value if isinstance(value, dict) else {}
    platform = GoStruct(architecture=value.get("architecture", ""), os=value.get("os", ""))
    for key in PLATFORM_FIELDS[2:]:
        if value.get(key):
            platform[key] = value[key]
    return platform


class Registry:
    """One endpoint of a registry, read with the credentials config.json holds for it."""

    def __init__(self, context: Context, base: str, domain: str, insecure: bool) -> None:
        self.base = base.rstrip("/")
        self.login = credentials(context, domain)
        self.tls = ssl.create_default_context()
        if insecure:
            self.tls.check_hostname = False
            self.tls.verify_mode = ssl.CERT_NONE
        self.basic = False

    def _get(self, path: str, accept: tuple[str, ...] = ()) -> tuple[str, bytes]:
        request = urllib.request.Request(self.base + path)
        if accept:
            request.add_header("Accept", ", ".join(accept))
        if self.basic and self.login.get("username"):
            pair = f"{self.login['username']}:{self.login.get('password', '')}"
            request.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=self.tls) as answer:
            return answer.headers.get("Content-Type", "").split(";")[0].strip(), answer.read()

    def ping(self) -> None:
        """GET /v2/, as the CLI configures its transport; a Basic challenge is answered with
        the stored credentials from then on."""
        url = self.base + "/v2/"
        try:
            self._get("/v2/")
        except urllib.error.HTTPError as error:
            if error.code != 401:
                return
            challenge = error.headers.get("WWW-Authenticate", "")
            self.basic = challenge.lower().startswith("basic")
        except urllib.error.URLError as error:
            reason = error.reason
            if isinstance(reason, ssl.SSLError) and not isinstance(reason, ssl.SSLEOFError):
                raise _Unavailable() from None  # plain HTTP spoken back to HTTPS
            raise StatusError(
                1,
                f'failed to configure transport: error pinging v2 registry: Get "{url}": '
                + _reason_text(reason, self.base),
            ) from None

    def manifest(self, path: str, reference: str) -> tuple[str, bytes]:
        try:
            return self._get(f"/v2/{path}/manifests/{reference}", MANIFEST_TYPES)
        except urllib.error.HTTPError as error:
            if error.code in (401, 404):
                raise _Unavailable() from None
            raise StatusError(1, f"{error.code} {error.reason}") from None

    def blob(self, path: str, digest: str) -> bytes:
        try:
            return self._get(f"/v2/{path}/blobs/{digest}")[1]
        except urllib.error.HTTPError as error:
            if error.code in (401, 404):
                raise _Unavailable() from None
            raise StatusError(1, f"{error.code} {error.reason}") from None


def _reason_text(reason: Any, base: str) -> str:
    """What Go's HTTP client says about a failed connection."""
    host = base.split("://", 1)[-1]
    if isinstance(reason, ConnectionRefusedError):
        return f"dial tcp {host}: connect: connection refused"
    if isinstance(reason, ssl.SSLEOFError):
        return "EOF"
    text = getattr(reason, "strerror", None) or str(reason)
    return text[:1].lower() + text[1:]


def _verified(body: bytes, wanted: str | None, message: str) -> None:
    if wanted and "sha256:" + hashlib.sha256(body).hexdigest() != wanted:
        raise StatusError(1, message.format(wanted))


def _read_manifest(
    registry: Registry, image: ImageReference, ref: str, media_type: str, raw: bytes
) -> ImageManifest:
    """A single-platform manifest, checked against its digest, and its config fetched (and
    checked) for the platform, as pullManifestSchemaV2 does."""
    _verified(raw, image.digest, "manifest verification failed for digest {}")
    body = json.loads(raw)
    config_digest = (body.get("config") or {}).get("digest", "")
    config = registry.blob(image.path, config_digest)
    _verified(config, config_digest, "image config verification failed for digest {}")
    if media_type != DOCKER_MANIFEST:
        media_type = OCI_MANIFEST
    return ImageManifest(ref, media_type, raw, _platform(json.loads(config)))


def _read_list(registry: Registry, image: ImageReference, raw: bytes) -> list[ImageManifest]:
    """Every manifest a list names, each read under ``name[:tag]@digest``, with the list's
    platform for it."""
    _verified(raw, image.digest, "manifest verification failed for digest {}")
    manifests = []
    for entry in json.loads(raw).get("manifests") or []:
        digest = entry.get("digest", "")
        media_type, body = registry.manifest(image.path, digest)
        child = ImageReference(image.name, image.tag, digest)
        manifest = _read_manifest(registry, child, str(child), media_type, body)
        manifest.platform = _platform(entry.get("platform"))
        manifests.append(manifest)
    return manifests


def _endpoints(context: Context, image: ImageReference, insecure: bool) -> list[str]:
    """Where to look: for docker.io, the engine's registry mirrors (Docker Hub if it has
    none); for another registry, HTTPS, then plain HTTP when --insecure allows it."""
    if image.domain == DEFAULT_DOMAIN:
        info = context.client.get_json("/info")
        mirrors = ((info or {}).get("RegistryConfig") or {}).get("Mirrors") or []
        return list(mirrors) or [DOCKER_HUB]
    return [f"https://{image.domain}"] + ([f"http://{image.domain}"] if insecure else [])


def _print_list(context: Context, manifests: list[ImageManifest], verbose: bool) -> None:
    if verbose:
        text = "[" + ",".join(m.verbose_json() for m in manifests) + "]"
        context.out(go_reformat(text, "\t", escape_html=True))
        return
    entries = [
        GoStruct(
            mediaType=m.media_type,
            size=len(m.raw),
            digest=m.digest,
            platform=m.platform,
        )
        for m in manifests
    ]
    first = manifests[0].media_type if manifests else ""
    media_type = OCI_INDEX if first == OCI_MANIFEST else DOCKER_LIST
    listing = GoStruct(schemaVersion=2, mediaType=media_type, manifests=entries)
    context.out(go_reformat(go_json(listing, escape_html=True), "   "))


def _inspect(context: Context, options: Options, args: list[str]) -> None:
    try:
        names = [parse_reference(name) for name in args]
    except ReferenceError as error:
        raise StatusError(1, str(error)) from None
    image = names[-1] if names[-1].digest else names[-1].with_default_tag()
    if len(args) == 2:  # a list of the local store, which holds none: `manifest create` is not here
        raise StatusError(1, f"No such manifest: {image}")
    insecure = options["insecure"]
    try:
        endpoints = _endpoints(context, image, insecure)
    except DaemonError as error:
        raise StatusError(1, f"Error response from daemon: {error.message}") from None
    for base in endpoints:
        registry = Registry(context, base, image.domain, insecure)
        try:
            registry.ping()
            media_type, raw = registry.manifest(image.path, image.digest or image.tag or "")
            if media_type in (DOCKER_LIST, OCI_INDEX):
                _print_list(context, _read_list(registry, image, raw), options["verbose"])
            elif options["verbose"]:
                manifest = _read_manifest(registry, image, str(image), media_type, raw)
                context.out(go_reformat(manifest.verbose_json(), "\t", escape_html=True))
            else:
                _read_manifest(registry, image, str(image), media_type, raw)
                context.out(go_reformat(raw.decode(), "\t"))
            return
        except _Unavailable:
            continue
    raise StatusError(1, f"no such manifest: {image}")


def _inspect_command() -> Command:
    return Command(
        "inspect",
        usage="[OPTIONS] [MANIFEST_LIST] MANIFEST",
        short="Display an image manifest, or manifest list",
        description="Display an image manifest, or manifest list\n\n"
        + EXPERIMENTAL.format("docker manifest inspect"),
        run=_inspect,
        args=Args(1, 2),
        flags=[
            Flag("insecure", help="Allow communication with an insecure registry"),
            Flag("verbose", "v", help="Output additional info including layers and platform"),
        ],
    )


def register(root: Command, groups: dict[str, Command]) -> None:
    """Add ``docker manifest inspect``; ``docker manifest`` alone prints its help to stderr
    after a blank line, as Docker's does."""
    group = groups["manifest"]

    def show_help(context: Context, options: Options, args: list[str]) -> None:
        if args:
            raise UsageError(f"unknown command: {group.path} {args[0]}", group, 1)
        context.stderr.write("\n" + group.help_text())

    group.description = MANIFEST_DESCRIPTION
    group.usage = "COMMAND"
    group.run = show_help
    group.add(_inspect_command())
