"""Packaging hygiene: an SPDX licence, bounded 0.x dependencies, one lock file for everyone."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPOSITORY = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((REPOSITORY / "pyproject.toml").read_text(encoding="utf-8"))["project"]
LOCK = REPOSITORY / "requirements.lock"


def pinned() -> dict[str, str]:
    """Package → version of every pin in the lock file."""
    pins = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith((" ", "#")):
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line}"
            pins[canonicalize_name(name.split("[")[0])] = version.strip()
    return pins


def requirements() -> list[Requirement]:
    return [
        Requirement(text)
        for text in [*PROJECT["dependencies"], *PROJECT["optional-dependencies"]["dev"]]
    ]


class TestMetadata:
    def test_licence_is_an_spdx_expression(self) -> None:
        """`license = "…"` (PEP 639), not the deprecated table form."""
        assert isinstance(PROJECT["license"], str)
        assert re.fullmatch(r"[A-Za-z0-9.+-]+", PROJECT["license"])

    def test_zero_x_dependencies_have_an_upper_bound(self) -> None:
        """A 0.x library may break its API in any release: sqlmodel stays below 0.1."""
        for requirement in requirements():
            lower = [spec.version for spec in requirement.specifier if spec.operator == ">="]
            if lower and lower[0].startswith("0."):
                assert any(spec.operator == "<" for spec in requirement.specifier), requirement


class TestLockFile:
    def test_lock_pins_every_declared_dependency(self) -> None:
        """Every dependency of pyproject.toml (dev extras too) is pinned, within its bounds."""
        pins = pinned()
        for requirement in requirements():
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{name} is not in requirements.lock: run make lock"
            assert requirement.specifier.contains(pins[name], prereleases=True), name

    def test_installed_versions_are_the_locked_ones(self) -> None:
        """`make install` installed exactly the lock's versions, as CI and a clinic do."""
        for name, version in pinned().items():
            assert metadata.version(name) == version, name

    def test_install_uses_the_lock_and_stays_quiet(self) -> None:
        """`make install` installs from the lock, then the project without its dependencies,
        printing one short progress line per step."""
        makefile = (REPOSITORY / "Makefile").read_text(encoding="utf-8")
        recipe = makefile.split("$(STAMP): pyproject.toml $(LOCK)\n")[1].split("\n\n")[0]
        steps = [line.strip() for line in recipe.splitlines()]
        assert all(step.startswith("@") for step in steps), "every step is silent"
        assert "--quiet" in re.search(r"^PIP := (.*)$", makefile, re.MULTILINE)[1]  # type: ignore[index]
        assert any("install --requirement $(LOCK)" in step for step in steps)
        assert any("install --no-deps --editable ." in step for step in steps)
        echoes = [step for step in steps if step.startswith("@echo")]
        assert len(echoes) >= 2
        assert all(len(step) < 100 for step in echoes)
        ci = (REPOSITORY / ".ci" / "run").read_text(encoding="utf-8")
        assert "make install" in ci
        assert "make wheel" in ci
