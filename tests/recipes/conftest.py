"""Helpers to run a recipe's prepare.sh in a scratch folder with this checkout's code."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def make_recipe_dir(tmp_path: Path, recipe: str) -> Path:
    """A scratch recipe folder: prepare.sh linked, local/utils as in the repo."""
    work = tmp_path / "SSL"
    work.mkdir()
    (work / "prepare.sh").symlink_to(REPO / "egs" / recipe / "SSL" / "prepare.sh")
    for name in ("local", "utils"):
        (work / name).symlink_to(REPO / name)
    return work


def run_prepare(work: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ./prepare.sh ARGS in ``work`` with this interpreter's environment first on PATH."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run(["./prepare.sh", *args], cwd=work, env=env, capture_output=True,
                          text=True)


@pytest.fixture(scope="session")
def recipe():
    """``recipe.make(tmp_path, "librispeech")`` and ``recipe.run(work, *args)``."""

    class Recipe:
        make = staticmethod(make_recipe_dir)
        run = staticmethod(run_prepare)

    return Recipe
