"""Pull speed: our client pulling from the hub, beside skopeo copying the same images.

Serves the hub's default root (where `make setup` built the base images) on a loopback
port, then, for debian:bookworm-slim and node, in alternating rounds: our pull into an
empty image store, and `skopeo copy` from the hub to an empty OCI directory. Then times a
re-pull with every layer present. With ``--build``, also times a cold build of every base
image into a temporary hub root and layer cache. Must run as root. Prints figures only.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from simulator.hub.process import serving  # noqa: E402
from simulator.hub.storage import DEFAULT_ROOT  # noqa: E402

IMAGES = ("debian:bookworm-slim", "node:18")


def ours(hub: str, image: str, scratch: Path) -> tuple[float, float]:
    """Seconds for a pull into an empty store, then for a re-pull with all layers present."""
    from simulator.images.pull import pull
    from simulator.images.store import ImageStore

    store = ImageStore(scratch / "data", scratch / "layers")
    mirrors = {"docker.io": [f"http://{hub}"]}
    started = time.perf_counter()
    for _ in pull(store, image, mirrors=mirrors, upstream=False):
        pass
    cold = time.perf_counter() - started
    started = time.perf_counter()
    for _ in pull(store, image, mirrors=mirrors, upstream=False):
        pass
    warm = time.perf_counter() - started
    return cold, warm


def skopeo(hub: str, image: str, scratch: Path) -> tuple[float, float]:
    """Seconds for `skopeo copy` to an OCI directory, then for `umoci unpack` of it: the
    reference for a download alone, and for a download plus unpacking like our pull."""
    name, _, tag = image.partition(":")
    scratch.mkdir(parents=True)
    started = time.perf_counter()
    subprocess.run(
        ["skopeo", "copy", "--quiet", "--src-tls-verify=false",
         f"docker://{hub}/library/{name}:{tag}", f"oci:{scratch / 'layout'}:{tag}"],
        check=True,
    )  # fmt: skip
    copied = time.perf_counter() - started
    subprocess.run(
        ["umoci", "unpack", "--image", f"{scratch / 'layout'}:{tag}", str(scratch / "bundle")],
        check=True,
        capture_output=True,
    )
    return copied, time.perf_counter() - started


def remove_store(scratch: Path) -> None:
    """Unmount nothing (a pull mounts nothing), then delete the scratch tree."""
    shutil.rmtree(scratch, ignore_errors=True)


def timed_build(workdir: Path) -> list[tuple[str, float]]:
    from simulator.hub import recipes

    figures = []
    for recipe in recipes.RECIPES:
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "simulator.hub", "build", recipe.name, "--quiet",
             "--root", str(workdir / "hub"), "--cache", str(workdir / "cache")],
            cwd=REPO_ROOT,
            check=True,
        )  # fmt: skip
        figures.append((recipe.name, time.perf_counter() - started))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--build", action="store_true", help="also time a cold build")
    args = parser.parse_args()
    if shutil.which("skopeo") is None:
        print("skopeo is not installed", file=sys.stderr)
        return 1
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="slipway-bench-pull-") as tmp,
        serving(DEFAULT_ROOT) as hub,
    ):
        for image in IMAGES:
            cold, warm, copies, unpacked = [], [], [], []
            for round_number in range(args.rounds):
                scratch = Path(tmp) / f"ours-{round_number}"
                try:
                    c, w = ours(hub, image, scratch)
                finally:
                    remove_store(scratch)
                cold.append(c)
                warm.append(w)
                scratch = Path(tmp) / f"skopeo-{round_number}"
                try:
                    copy_s, unpack_s = skopeo(hub, image, scratch)
                    copies.append(copy_s)
                    unpacked.append(unpack_s)
                finally:
                    shutil.rmtree(scratch, ignore_errors=True)
            medians = [statistics.median(series) for series in (cold, copies, unpacked, warm)]
            rows.append((image, *medians))
        print(f"{args.rounds} rounds, medians, from the hub on {hub}\n")
        print(
            f"{'image':<22}{'our pull':>10}{'skopeo copy':>13}{'ratio':>7}"
            f"{'copy+umoci unpack':>19}{'ratio':>7}{'re-pull':>9}   (seconds)"
        )
        for image, pull_s, copy_s, unpack_s, repull_s in rows:
            print(
                f"{image:<22}{pull_s:>10.2f}{copy_s:>13.2f}{pull_s / copy_s:>7.1f}"
                f"{unpack_s:>19.2f}{pull_s / unpack_s:>7.2f}{repull_s:>9.3f}"
            )
        print(
            "\nOur pull downloads and unpacks every layer into the snapshotter; skopeo copy only "
            "stores blobs,\nso skopeo copy followed by umoci unpack is the like-for-like reference."
        )
    if args.build:
        with tempfile.TemporaryDirectory(prefix="slipway-bench-build-") as tmp:
            figures = timed_build(Path(tmp))
        print("\ncold build of the base images (each recipe in order; bases come from the cache)")
        for name, seconds in figures:
            print(f"  {name:<10}{seconds:>8.1f} s")
        print(f"  {'total':<10}{sum(s for _, s in figures):>8.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
