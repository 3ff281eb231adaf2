"""What can be checked of the container images without a Docker engine: the Dockerfiles parse,
everything they copy exists, the commands they run exist, and no compiler reaches the final
stage."""

from __future__ import annotations

import importlib
import json
import re
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from conftest import ROOT
from stoker_agent.cli import COMMANDS

DOCKERFILES = sorted((ROOT / "adapters" / "images").glob("*.Dockerfile"))
KEYWORDS = {
    "FROM",
    "RUN",
    "COPY",
    "ENV",
    "USER",
    "EXPOSE",
    "ENTRYPOINT",
    "CMD",
    "WORKDIR",
    "ARG",
    "LABEL",
}


def instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def test_there_is_an_image_for_the_controller_and_for_the_agent() -> None:
    assert [p.name for p in DOCKERFILES] == ["agent.Dockerfile", "controller.Dockerfile"]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_parses_and_copies_only_what_exists(path: Path) -> None:
    steps = instructions(path)
    assert all(word in KEYWORDS for word, _ in steps), steps
    assert steps[0][0] == "FROM"
    for word, rest in steps:
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _ = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), f"{path.name} copies missing {source}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_entry_point_and_command_exist_and_run_as_non_root(path: Path) -> None:
    steps = instructions(path)
    final = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM") :]
    entry = json.loads(next(rest for word, rest in final if word == "ENTRYPOINT"))
    command = json.loads(next(rest for word, rest in final if word == "CMD"))
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entry == ["stoker"]
    assert "stoker" in scripts
    assert command[0] in COMMANDS
    user = next(rest for word, rest in final if word == "USER")
    assert not user.startswith(("0", "root"))
    final_text = " ".join(rest for _, rest in final)
    assert not re.search(r"\b(gcc|g\+\+|build-essential|clang)\b", final_text)


def _image_tools(monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, ModuleType]:
    monkeypatch.syspath_prepend(str(ROOT / "adapters" / "images"))
    return importlib.import_module("recipe"), importlib.import_module("build")


def test_every_dockerfile_is_the_one_the_image_recipe_renders(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recipe, _ = _image_tools(monkeypatch)
    images = recipe.load()
    assert sorted(recipe.dockerfile_path(i) for i in images) == DOCKERFILES
    for image in images:
        assert recipe.dockerfile_path(image).read_text() == recipe.dockerfile(image), (
            f"{image.key}.Dockerfile drifted from adapters/images/images.toml: "
            "run `python adapters/images/recipe.py --write`"
        )


def test_the_offline_build_uses_the_recipes_user_environment_and_entry_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recipe, build = _image_tools(monkeypatch)
    for image in recipe.load():
        flags = build.image_config(image)
        steps = dict(instructions(recipe.dockerfile_path(image))[-5:])
        values = {}
        for flag in flags:
            option, _, value = flag.partition("=")
            values.setdefault(option.removeprefix("--config."), []).append(value)
        assert values["user"] == [steps["USER"]]
        assert values["entrypoint"] == json.loads(steps["ENTRYPOINT"])
        assert values["cmd"] == json.loads(steps["CMD"])
        assert values["env"] == steps["ENV"].split()
        assert values["exposedports"] == [f"{p}/tcp" for p in steps["EXPOSE"].split()]


def test_each_image_installs_the_k8s_extra_which_holds_every_package_the_cli_says_it_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stoker_agent.cli import EXTRAS

    recipe, _ = _image_tools(monkeypatch)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    k8s = {re.split(r"[<>=\[ ]", r)[0].lower().replace("-", "_") for r in extras["k8s"]}
    wanted = {{"jwt": "pyjwt"}.get(module, module) for module, extra in EXTRAS.items()}
    assert wanted <= k8s, "cli.EXTRAS names a package the k8s extra does not install"
    for image in recipe.load():
        assert image.extras == ("k8s",), f"{image.key}: install stoker[k8s]"
