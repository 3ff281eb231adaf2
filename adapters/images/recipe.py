"""Stoker's image recipe (images.toml): the facts both image builds share, and the Dockerfiles.

    python adapters/images/recipe.py --write   rewrite adapters/images/*.Dockerfile from images.toml
    python adapters/images/recipe.py --check   exit 1 when a committed Dockerfile differs

The offline build (adapters/images/build.py) imports `load` and `Image` from here, so the package
lists, the user, the environment and the entry point cannot differ between the two builds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECIPE = HERE / "images.toml"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Image:
    """One image of the recipe, with the base facts folded in."""

    key: str
    about: str
    why: str
    chart_value: str
    base_image: str
    suite: str
    mirror: str
    base_packages: tuple[str, ...]
    packages: tuple[str, ...]
    extras: tuple[str, ...]
    venv: str
    user: str
    expose: tuple[int, ...]
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    base_env: tuple[tuple[str, str], ...]

    @property
    def all_packages(self) -> tuple[str, ...]:
        """The Debian packages of the final image: the base's, then the image's own."""
        return self.base_packages + tuple(p for p in self.packages if p not in self.base_packages)

    @property
    def requirement(self) -> str:
        """What pip installs: the project with this image's extras."""
        return f"stoker[{','.join(self.extras)}]" if self.extras else "stoker"

    @property
    def env(self) -> tuple[tuple[str, str], ...]:
        """The image's environment: the virtualenv first on PATH, then the base's variables."""
        return (("PATH", f"{self.venv}/bin:{SYSTEM_PATH}"), *self.base_env)


def load(path: Path = RECIPE) -> list[Image]:
    """Read the recipe; images in file order."""
    data = tomllib.loads(path.read_text())
    base = data["base"]
    return [
        Image(
            key=key,
            about=spec["about"],
            why=spec["why"],
            chart_value=spec["chart_value"],
            base_image=base["image"],
            suite=base["suite"],
            mirror=base["mirror"],
            base_packages=tuple(base["packages"]),
            packages=tuple(spec["packages"]),
            extras=tuple(spec["extras"]),
            venv=base["venv"],
            user=spec["user"],
            expose=tuple(spec["expose"]),
            entrypoint=tuple(spec["entrypoint"]),
            cmd=tuple(spec["cmd"]),
            base_env=tuple(base["env"].items()),
        )
        for key, spec in data["images"].items()
    ]


@dataclass(frozen=True)
class TestImage:
    """A test-only image of the recipe (`[test_images.*]`): the base system plus a few of the
    project's test files, run as `user`; never shipped, so no Dockerfile is rendered."""

    key: str
    about: str
    name: str
    suite: str
    mirror: str
    base_packages: tuple[str, ...]
    files: tuple[str, ...]
    dest: str
    api_token: str
    data_dir: str
    user: str
    expose: tuple[int, ...]
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: tuple[tuple[str, str], ...]


def load_test_images(path: Path = RECIPE) -> list[TestImage]:
    """Read the recipe's test-only images, in file order."""
    data = tomllib.loads(path.read_text())
    base = data["base"]
    return [
        TestImage(
            key=key,
            about=spec["about"],
            name=spec["name"],
            suite=base["suite"],
            mirror=base["mirror"],
            base_packages=tuple(base["packages"]),
            files=tuple(spec["files"]),
            dest=spec["dest"],
            api_token=spec["api_token"],
            data_dir=spec["data_dir"],
            user=spec["user"],
            expose=tuple(spec["expose"]),
            entrypoint=tuple(spec["entrypoint"]),
            cmd=tuple(spec["cmd"]),
            env=(("PATH", SYSTEM_PATH), *base["env"].items(), *spec["env"].items()),
        )
        for key, spec in data.get("test_images", {}).items()
    ]


def _apt(packages: tuple[str, ...]) -> list[str]:
    return [
        "RUN apt-get update \\",
        f" && apt-get install -y --no-install-recommends {' '.join(packages)} \\",
        " && rm -rf /var/lib/apt/lists/*",
    ]


def dockerfile(image: Image) -> str:
    """The Dockerfile users build for `image` (from the repository root)."""
    extras = ",".join(image.extras)
    pip = f"{image.venv}/bin/pip install --no-cache-dir --no-index --find-links /wheels"
    lines = [
        *(f"# {line}" for line in image.about.splitlines()),
        "# Rendered from adapters/images/images.toml by adapters/images/recipe.py (edit those,",
        "# then run `python adapters/images/recipe.py --write`); the offline build uses the same",
        "# recipe. Build from the repository root:",
        f"#   docker build -f adapters/images/{image.key}.Dockerfile .",
        f"FROM {image.base_image} AS build",
        *_apt(image.base_packages),
        "WORKDIR /src",
        "COPY pyproject.toml README.md ./",
        "COPY src ./src",
        "RUN python3 -m venv /opt/build \\",
        f' && /opt/build/bin/pip wheel --wheel-dir /wheels ".[{extras}]"',
        "",
        f"FROM {image.base_image}",
        f"# {image.why}",
        *_apt(image.all_packages),
        "COPY --from=build /wheels /wheels",
        f"RUN python3 -m venv {image.venv} \\",
        f' && {pip} "{image.requirement}" \\',
        " && rm -rf /wheels",
        f"ENV {' '.join(f'{k}={v}' for k, v in image.env)}",
        f"USER {image.user}",
        f"EXPOSE {' '.join(str(p) for p in image.expose)}",
        f"ENTRYPOINT {json.dumps(list(image.entrypoint))}",
        f"CMD {json.dumps(list(image.cmd))}",
    ]
    return "\n".join(lines) + "\n"


def dockerfile_path(image: Image) -> Path:
    """Where the rendered Dockerfile of `image` is committed."""
    return HERE / f"{image.key}.Dockerfile"


def main(argv: list[str] | None = None) -> int:
    """Write or check the Dockerfiles."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the Dockerfiles")
    args = parser.parse_args(argv)
    stale = []
    for image in load():
        path = dockerfile_path(image)
        text = dockerfile(image)
        if path.exists() and path.read_text() == text:
            continue
        if args.write:
            path.write_text(text)
            print(f"wrote {path.relative_to(HERE.parent.parent)}")
        else:
            stale.append(path.name)
    if stale:
        print(
            f"{', '.join(stale)} differ from adapters/images/images.toml: "
            "run `python adapters/images/recipe.py --write`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
