"""The built distributions: ``python -m build`` gives an sdist and a wheel (built from the
sdist), and the wheel installed in a fresh virtualenv runs the weather example and
``stepstream --version``.

To stay fast and offline, the build uses this environment's setuptools (``--no-isolation``)
and the fresh virtualenv installs only the wheel (``--no-deps``): its dependencies come from
this environment's site-packages, reached through a ``.pth`` file, which does not pull in the
editable stepstream of this checkout (a ``.pth`` file in a directory added that way is not
read). The test checks that ``stepstream`` is imported from the fresh virtualenv.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _check(
    command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd, env=env)
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("dist")
    _check([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)])
    yield out


@pytest.fixture(scope="module")
def fresh_venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, with_pip=False)
    python = home / "bin" / "python"
    purelib = _check(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    )
    site = Path(purelib.stdout.strip())
    (site / "test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next(dist.glob("stepstream-*.whl"))
    # This environment's pip installs into the fresh one (which has none of its own).
    _check([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
            "--no-index", str(wheel)])  # fmt: skip
    return home


def test_build_gives_an_sdist_and_a_wheel_with_the_kit_license_and_entry_points(
    dist: Path,
) -> None:
    expected = version("stepstream")
    wheel = next(dist.glob("stepstream-*.whl"))
    sdist = next(dist.glob("stepstream-*.tar.gz"))
    assert wheel.name == f"stepstream-{expected}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"stepstream-{expected}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert {
        "stepstream/py.typed", "stepstream/__main__.py", "stepstream/testing/pytest_plugin.py",
        "stepstream/testing/model_server.py", "stepstream/cli/__init__.py",
        "stepstream/agents/agent.py", "stepstream/plugins/stream.py", f"{info}/licenses/LICENSE",
    } <= names  # fmt: skip
    assert not any(n.startswith("stepstream/agents/local_") for n in names)
    # The Studio ships inside the wheel: every file of its folder, nothing built elsewhere.
    studio = {f"stepstream/server/studio/{p.name}" for p in (ROOT / "core/server/studio").iterdir()}
    assert "stepstream/server/studio/index.html" in studio and studio <= names
    assert "License-Expression: MIT" in metadata
    assert "stepstream = stepstream.testing.pytest_plugin" in entry_points
    assert "stepstream = stepstream.cli:main" in entry_points
    with tarfile.open(sdist) as archive:
        members = {m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name}
    assert {"LICENSE", "README.md", "pyproject.toml", "core/testing/__init__.py"} <= members


def test_the_installed_wheel_runs_the_weather_example_and_says_its_version(
    fresh_venv: Path, tmp_path: Path
) -> None:
    python = str(fresh_venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PYTHON"))}
    env.pop("WEATHER_API_URL", None)
    env.pop("GEOCODING_API_URL", None)
    # This environment's third-party plugins (the exporter package, installed editable) are
    # visible by their metadata but not importable from the fresh virtualenv.
    env["STEPSTREAM_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    where = _check([python, "-c", "import stepstream; print(stepstream.__file__)"], cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(fresh_venv)
    done = _check([str(fresh_venv / "bin" / "stepstream"), "--version"], cwd=tmp_path, env=env)
    assert done.stdout == f"stepstream {version('stepstream')}\n"
    weather = _check([python, str(ROOT / "examples" / "weather.py")], cwd=tmp_path, env=env)
    assert "Activity plan for London" in weather.stdout
    assert weather.stdout.rstrip().endswith("status: success")
