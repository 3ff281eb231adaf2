"""Build Stoker's images offline from images.toml: debootstrap + apt + pip, packed with umoci.

    python adapters/images/build.py [--out build/images] [--ref REV]  every image of the recipe
    python adapters/images/build.py pause SOURCE NAME [--out ...]  a static pause image from C

No registry is needed: Debian's mirror (debootstrap, apt) and PyPI (pip wheel) are the only
sources, as for the Dockerfiles. Each image becomes `<out>/<key>.oci.tar`, an OCI image layout
whose tag is the image's tag, beside `<out>/<key>.ref` holding its full name (from the chart's
values.yaml): `ctr -n k8s.io images import --base-name <name without tag> <key>.oci.tar`
gives it the name the chart uses, so IfNotPresent never pulls. The tarball also holds a
`manifest.json` naming the image in full, so `docker load -i <key>.oci.tar` loads it too.
The Debian root filesystems are cached under ${XDG_CACHE_HOME:-~/.cache}/stoker/images by a
hash of suite, mirror and package list. Needs root (debootstrap, chroot); every mount it makes
lives in a private mount namespace (unshare) and ends with it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import yaml
from recipe import Image, TestImage, load, load_test_images

ROOT = Path(__file__).resolve().parent.parent.parent
VALUES = ROOT / "adapters" / "helm" / "stoker" / "values.yaml"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stoker" / "images"
CLEAN = ["var/lib/apt/lists", "var/cache/apt", "var/log/apt", "var/cache/debconf/templates.dat-old"]
# What debian:bookworm-slim (the Dockerfiles' base) leaves out: documentation but its copyright
# files, manuals, translations. Part of the cache key: changing it rebuilds the root filesystems.
SLIM = ["usr/share/man", "usr/share/groff", "usr/share/info", "usr/share/lintian",
        "usr/share/linda", "usr/share/locale"]  # fmt: skip


# How a tarball is laid out; part of every image's key, so a change repacks them all.
PACKING = "oci-layout+docker-manifest/1"

# What `--ref` takes from a commit: the project, and the test support the test images copy.
ARCHIVED = ["pyproject.toml", "README.md", "src", "tests/support"]


class BuildError(Exception):
    """A step of the image build failed; the message says which and how to fix it."""


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"images: {message}", file=sys.stderr, flush=True)


def run(*argv: str | Path, **kwargs: object) -> None:
    """Run a command, failing with its name when it fails."""
    done = subprocess.run([str(a) for a in argv], check=False, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise BuildError(f"{' '.join(str(a) for a in argv[:4])} … exited {done.returncode}")


def in_mount_ns(*argv: str | Path) -> None:
    """Run a command in a private mount namespace: debootstrap's /proc mounts stay off the host."""
    run("unshare", "--mount", "--propagation", "private", *argv)


def chroot(rootfs: Path, script: str) -> None:
    """Run a shell script inside `rootfs` with a clean environment (as a Dockerfile's RUN has)
    and /proc and /dev/null mounted in a namespace of its own."""
    wrapper = (
        'set -e; mount -t proc proc "$1/proc"; '
        'mount --bind /dev/null "$1/dev/null" 2>/dev/null || true; '
        'exec chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root '
        'LANG=C.UTF-8 /bin/sh -ec "$2"'
    )
    in_mount_ns("sh", "-c", wrapper, "sh", rootfs, script)


def digest(*parts: str) -> str:
    """A short hash naming a cache entry."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def publish(tmp: Path, dest: Path) -> None:
    """Rename a finished build into the cache, keeping a concurrent winner."""
    try:
        tmp.rename(dest)
    except OSError:
        if not dest.exists():
            raise
        shutil.rmtree(tmp)


def cached_rootfs(name: str, key: str, make: callable) -> Path:  # type: ignore[valid-type]
    """The cache directory `name-key`, made by `make(tmpdir)` when missing."""
    dest = CACHE / f"{name}-{key}"
    if (dest / "etc" / "os-release").exists():
        log(f"cached {dest}")
        return dest
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".build-{name}-", dir=CACHE))
    try:
        start = time.monotonic()
        make(tmp)
        log(f"{name} built in {time.monotonic() - start:.0f}s")
        publish(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for stale in CACHE.glob(f"{name}-*"):  # older keys of the same root filesystem
        if stale != dest and len(stale.name) == len(dest.name):
            log(f"removing the outdated {stale}")
            shutil.rmtree(stale, ignore_errors=True)
    return dest


def base_rootfs(image: Image | TestImage) -> Path:
    """Debian `suite` with the recipe's base packages (Python), from debootstrap."""
    key = digest(image.suite, image.mirror, *image.base_packages)

    def make(tmp: Path) -> None:
        if not shutil.which("debootstrap"):
            raise BuildError("debootstrap not found: run `make cluster-sysdeps` (Debian packages)")
        log(f"debootstrap {image.suite} with {' '.join(image.base_packages)} (minutes)")
        in_mount_ns(
            "debootstrap", "--variant=minbase", f"--include={','.join(image.base_packages)}",
            image.suite, tmp, image.mirror,
        )  # fmt: skip

    return cached_rootfs(f"{image.suite}-base", key, make)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def slim(rootfs: Path) -> None:
    """Remove what the slim Debian images exclude (dpkg path-exclude): docs, manuals, locales."""
    for rel in SLIM:
        for child in (rootfs / rel).glob("*"):
            _remove(child)
    for child in (rootfs / "usr/share/doc").glob("*/*"):
        if child.name != "copyright":
            _remove(child)


def image_rootfs(image: Image) -> Path:
    """The base root filesystem plus the image's own Debian packages, apt's lists removed."""
    base = base_rootfs(image)
    key = digest(image.suite, image.mirror, *image.all_packages, *CLEAN, *SLIM)

    def make(tmp: Path) -> None:
        tmp.rmdir()
        run("cp", "-a", base, tmp)
        resolv = tmp / "etc" / "resolv.conf"
        resolv.unlink(missing_ok=True)
        shutil.copy("/etc/resolv.conf", resolv)
        sources = f"deb {image.mirror} {image.suite} main\n"
        (tmp / "etc" / "apt" / "sources.list").write_text(sources)
        extra = " ".join(p for p in image.all_packages if p not in image.base_packages)
        log(f"apt-get install {extra}")
        chroot(
            tmp,
            "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; "
            f"apt-get install -y -qq --no-install-recommends {extra} >/dev/null",
        )
        resolv.unlink()
        for rel in CLEAN:
            shutil.rmtree(tmp / rel, ignore_errors=True)
        slim(tmp)

    return cached_rootfs(f"{image.suite}-{image.key}", key, make)


def wheels(image: Image, source: Path, dest: Path) -> None:
    """Wheels of the project and its dependencies, as the Dockerfile's build stage makes them."""
    extras = ",".join(image.extras)
    log(f"pip wheel .[{extras}]")
    run(
        sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", dest, f".[{extras}]",
        cwd=source,
    )  # fmt: skip


def chart_name(image: Image) -> str:
    """The image's full name as the chart's default values give it: `image.registry`,
    `image.<chart_value>.repository` and `.tag`, joined as the chart's `stoker.image` does."""
    values = yaml.safe_load(VALUES.read_text()).get("image", {})
    entry = values.get(image.chart_value)
    if not isinstance(entry, dict) or not entry.get("repository") or not entry.get("tag"):
        raise BuildError(f"{VALUES}: image.{image.chart_value} needs a repository and a tag")
    name = f"{entry['repository']}:{entry['tag']}"
    return f"{values['registry']}/{name}" if values.get("registry") else name


def split_name(name: str) -> tuple[str, str]:
    """`registry/repo:tag` -> (`registry/repo`, `tag`)."""
    repo, _, tag = name.rpartition(":")
    return repo, tag


def pack(rootfs: Path, name: str, config: list[str], out: Path, key: str) -> Path:
    """Pack `rootfs` as a one-layer OCI image tagged as `name`'s tag; write the tarball and .ref."""
    _, tag = split_name(name)
    with tempfile.TemporaryDirectory(prefix="oci-", dir=out) as work:
        layout, bundle = Path(work) / "layout", Path(work) / "bundle"
        run("umoci", "init", "--layout", layout)
        run("umoci", "new", "--image", f"{layout}:{tag}")
        run("umoci", "unpack", "--image", f"{layout}:{tag}", bundle, stdout=subprocess.DEVNULL)
        shutil.rmtree(bundle / "rootfs")
        run("cp", "-a", rootfs, bundle / "rootfs")
        run("umoci", "repack", "--image", f"{layout}:{tag}", bundle)
        run("umoci", "config", "--image", f"{layout}:{tag}", *config)
        run("umoci", "gc", "--layout", layout)
        docker_manifest(layout, name)
        tarball = out / f"{key}.oci.tar"
        run("tar", "-C", layout, "-cf", tarball, ".")
    (out / f"{key}.ref").write_text(name + "\n")
    log(f"{name}: {tarball} ({tarball.stat().st_size / 2**20:.0f} MiB)")
    return tarball


def docker_manifest(layout: Path, name: str) -> None:
    """Add `manifest.json` beside the OCI layout's index: the same tarball then loads with
    `docker load` of any version (Docker before 25 reads only this file) under `name`."""
    index = json.loads((layout / "index.json").read_text())
    [descriptor] = index["manifests"]

    def blob(digest: str) -> str:
        algorithm, hexdigest = digest.split(":", 1)
        return f"blobs/{algorithm}/{hexdigest}"

    manifest = json.loads((layout / blob(descriptor["digest"])).read_text())
    entry = {
        "Config": blob(manifest["config"]["digest"]),
        "RepoTags": [name],
        "Layers": [blob(layer["digest"]) for layer in manifest["layers"]],
    }
    (layout / "manifest.json").write_text(json.dumps([entry]))


def image_config(image: Image | TestImage) -> list[str]:
    """umoci config flags for the recipe's user, environment, ports and entry point."""
    flags = [f"--config.user={image.user}", "--config.workingdir=/"]
    flags += [f"--config.env={k}={v}" for k, v in image.env]
    flags += [f"--config.exposedports={p}/tcp" for p in image.expose]
    flags += [f"--config.entrypoint={a}" for a in image.entrypoint]
    flags += [f"--config.cmd={a}" for a in image.cmd]
    return flags


def source_key(image: Image, system: Path, source: Path) -> str:
    """What an image is built from: its root filesystem, recipe, name and the project's files."""
    parts = [PACKING, system.name, repr(image), chart_name(image)]
    files = [source / "pyproject.toml", source / "README.md", *(source / "src").rglob("*")]
    for path in sorted(files):
        if path.is_file() and "__pycache__" not in path.parts:
            parts += [str(path.relative_to(source)), hashlib.sha256(path.read_bytes()).hexdigest()]
    return digest(*parts)


@contextlib.contextmanager
def project_source(ref: str | None) -> Iterator[Path]:
    """The project's files to build: the work tree (as `docker build .`), or a commit's."""
    if ref is None:
        yield ROOT
        return
    with tempfile.TemporaryDirectory(prefix="source-") as tmp:
        archive = subprocess.run(
            ["git", "-C", ROOT, "archive", ref, *ARCHIVED],
            capture_output=True,
            check=False,
        )
        if archive.returncode != 0:
            raise BuildError(f"git archive {ref} failed: {archive.stderr.decode().strip()}")
        run("tar", "-x", "-C", tmp, input=archive.stdout)
        yield Path(tmp)


def build_image(image: Image, source: Path, out: Path) -> Path:
    """One recipe image: its cached Debian root filesystem plus a virtualenv with the project."""
    name = chart_name(image)
    system = image_rootfs(image)
    key = source_key(image, system, source)
    tarball, stamp = out / f"{image.key}.oci.tar", out / f"{image.key}.key"
    if tarball.exists() and stamp.exists() and stamp.read_text().strip() == key:
        log(f"{name}: {tarball} is up to date")
        return tarball
    stamp.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{image.key}-", dir=out) as work:
        rootfs = Path(work) / "rootfs"
        run("cp", "-a", system, rootfs)
        wheels(image, source, rootfs / "wheels")
        log(f"{image.key}: venv {image.venv} with {image.requirement}")
        chroot(
            rootfs,
            f"python3 -m venv {image.venv}; "
            f"{image.venv}/bin/pip install -q --no-cache-dir --no-index --find-links /wheels "
            f"'{image.requirement}'; rm -rf /wheels",
        )
        tarball = pack(rootfs, name, image_config(image), out, image.key)
    stamp.write_text(key + "\n")
    return tarball


def build_test_image(image: TestImage, source: Path, out: Path) -> Path:
    """A test-only image: the base root filesystem, the recipe's files under `dest`, the user
    (with a passwd entry, as the real image has) owning a seeded data directory."""
    system = base_rootfs(image)
    parts = [PACKING, system.name, repr(image)]
    for rel in image.files:
        parts += [rel, hashlib.sha256((source / rel).read_bytes()).hexdigest()]
    key = digest(*parts)
    tarball, stamp = out / f"{image.key}.oci.tar", out / f"{image.key}.key"
    if tarball.exists() and stamp.exists() and stamp.read_text().strip() == key:
        log(f"{image.name}: {tarball} is up to date")
        return tarball
    stamp.unlink(missing_ok=True)
    uid, gid = image.user.split(":")
    home = str(Path(image.data_dir).parent)
    with tempfile.TemporaryDirectory(prefix=f"{image.key}-", dir=out) as work:
        rootfs = Path(work) / "rootfs"
        run("cp", "-a", system, rootfs)
        for rel in image.files:
            target = rootfs / image.dest.lstrip("/") / Path(rel).relative_to("tests")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / rel, target)
        seed = (
            "from pathlib import Path; "
            "from support.ignition_sim_resources import write_api_token; "
            f"name, secret = {image.api_token!r}.split(':', 1); "
            f"write_api_token(Path({image.data_dir!r}), name, secret=secret)"
        )
        chroot(
            rootfs,
            f"echo 'ignition:x:{uid}:{gid}:Ignition:{home}:/usr/sbin/nologin' >> /etc/passwd; "
            f"echo 'ignition:x:{gid}:' >> /etc/group; mkdir -p {image.data_dir}; "
            f'cd {image.dest} && python3 -c "{seed}"; '
            f"find {image.dest} -name __pycache__ -prune -exec rm -rf {{}} +; "
            f"chown -R {uid}:{gid} {home}",
        )
        tarball = pack(rootfs, image.name, image_config(image), out, image.key)
    stamp.write_text(key + "\n")
    return tarball


def build_pause(source: Path, name: str, out: Path) -> Path:
    """The pod sandbox image: a static binary built from C, running as nobody."""
    with tempfile.TemporaryDirectory(prefix="pause-", dir=out) as work:
        rootfs = Path(work) / "rootfs"
        rootfs.mkdir()
        run("gcc", "-static", "-Os", "-s", "-o", rootfs / "pause", source)
        config = ["--config.user=65535:65535", "--config.entrypoint=/pause"]
        return pack(rootfs, name, config, out, "pause")


def main(argv: list[str] | None = None) -> int:
    """Build the recipe's images, or the pause image."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "images")
    parser.add_argument(
        "--ref", help="build the project as committed at this git revision, not the work tree"
    )
    sub = parser.add_subparsers(dest="command")
    pause = sub.add_parser("pause", help="a static pause image from a C source")
    pause.add_argument("source", type=Path)
    pause.add_argument("name")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        log("needs root (debootstrap, chroot, umoci unpack keep file owners)")
        return 1
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    try:
        if args.command == "pause":
            build_pause(args.source.resolve(), args.name, out)
        else:
            sizes = {}
            with project_source(args.ref) as source:
                for image in load():
                    tarball = build_image(image, source, out)
                    sizes[image.key] = tarball.stat().st_size
                for test_image in load_test_images():
                    tarball = build_test_image(test_image, source, out)
                    sizes[test_image.key] = tarball.stat().st_size
            (out / "sizes.json").write_text(json.dumps(sizes, indent=2) + "\n")
    except BuildError as error:
        log(f"failed: {error}")
        return 1
    log(f"done in {time.monotonic() - start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
