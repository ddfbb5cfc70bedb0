"""The distribution: every package listed, environment data inside the wheel, GPU parts optional."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def test_every_python_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for top in ("lmmr1_env", "lmmr1_agent")
               for p in (ROOT / top).rglob("__init__.py")}
    assert on_disk <= listed, f"add to pyproject.toml [tool.setuptools] packages: {sorted(on_disk - listed)}"


def test_wheel_ships_environment_data(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("lmmr1-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data_files = {f"lmmr1_env/data/{p.relative_to(ROOT / 'envs').as_posix()}" for p in (ROOT / "envs").rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts}
    assert data_files and data_files <= names, sorted(data_files - names)


def test_gpu_parts_are_optional():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"]).lower()
    assert "vllm" not in base and "deepspeed" not in base
    assert {"vllm", "deepspeed"} <= {d.split(">")[0].split("=")[0] for d in project["optional-dependencies"]["gpu"]}


def test_env_package_does_not_import_torch(run_python):
    out = run_python("import sys, gymnasium as gym, lmmr1_env\n"
                     "for i in lmmr1_env.registered_ids(): gym.make(i).reset(seed=0)\n"
                     "print('torch' in sys.modules)")
    assert out.strip() == "False"
