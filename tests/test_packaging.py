"""The package as an operator gets it: a wheel and an sdist built from this checkout carry the
pages' chart library (and its licence), and a wheel installed in a fresh virtualenv finds it."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

# Building reaches the package index for the build backend.
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
VENDOR = "fastmon/static/fastmon/vendor"
FILES = ["uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=300)  # fmt: skip
    return out


def test_the_wheel_and_the_sdist_carry_the_chart_library(built: Path) -> None:
    [wheel] = built.glob("fastmon-*.whl")
    [sdist] = built.glob("fastmon-*.tar.gz")
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    with tarfile.open(sdist) as archive:
        in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for name in FILES:
        assert f"{VENDOR}/{name}" in in_wheel, name
        assert f"{VENDOR}/{name}" in in_sdist, name
    assert "fastmon/py.typed" in in_wheel
    assert any(name.endswith("licenses/LICENSE") for name in in_wheel)


def test_a_wheel_installed_in_a_fresh_virtualenv_finds_the_chart_library(
    built: Path, tmp_path: Path
) -> None:
    [wheel] = built.glob("fastmon-*.whl")
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    # Outside the checkout, so the installed package is the one found.
    code = ("import importlib.resources as r; print(r.files('fastmon')"
            f".joinpath('static/fastmon/vendor/{FILES[0]}').read_text()[:200])")  # fmt: skip
    found = subprocess.run([python, "-c", code], cwd=tmp_path, check=True, capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    assert "uPlot" in found.stdout
