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


def test_wheel_ships_environment_data_and_configs(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("lmmr1-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data_files = {f"lmmr1_env/data/{p.relative_to(ROOT / 'envs').as_posix()}" for p in (ROOT / "envs").rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts}
    assert data_files and data_files <= names, sorted(data_files - names)
    configs = {f"lmmr1_agent/configs/{p.relative_to(ROOT / 'configs').as_posix()}"
               for p in (ROOT / "configs").rglob("*.yaml")}
    assert "lmmr1_agent/configs/experiments/paper/sweep.yaml" in configs and configs <= names, sorted(configs - names)


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


def _imports(path: Path, package: str) -> set[str]:
    """Modules of ``package`` that ``path`` imports anywhere (functions included), type-checking imports aside."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and ast.unparse(node.test).endswith(
        "TYPE_CHECKING") for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith(package):
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith(package)}
    return found


@pytest.mark.parametrize("package", ["lmmr1_env", "lmmr1_agent"])
def test_no_module_imports_one_that_imports_it_back(package):
    """Each concept has one home: no import cycles between modules, even through function-level imports."""
    root = ROOT / package
    modules = {".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): f
               for f in root.rglob("*.py")}
    graph = {name: {m for m in _imports(path, package) if m in modules and m != name}
             for name, path in modules.items()}
    cycles, done = [], set()

    def walk(name: str, path: list[str]) -> None:  # depth-first; a dependency still on the path closes a cycle
        for dep in sorted(graph[name]):
            if dep in path:
                cycles.append(" -> ".join(path[path.index(dep):] + [dep]))
            elif dep not in done:
                walk(dep, path + [dep])
        done.add(name)

    for name in sorted(graph):
        if name not in done:
            walk(name, [name])
    assert not cycles, sorted(set(cycles))[:5]


def test_every_module_imports_first(run_python):
    """Each module imports on its own, as the first of its package (in one interpreter: third-party libraries
    stay loaded, every lmmr1 module is dropped before the next is imported), so no module works only after
    another one happened to load."""
    out = run_python(
        "import importlib, pathlib, sys\n"
        f"root = pathlib.Path({str(ROOT)!r})\n"
        "names = sorted('.'.join(f.relative_to(root).with_suffix('').parts).removesuffix('.__init__')\n"
        "               for package in ('lmmr1_env', 'lmmr1_agent') for f in (root / package).rglob('*.py')\n"
        "               if f.name != '__main__.py')  # a __main__ runs its command\n"
        "for name in names:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] in ('lmmr1_env', 'lmmr1_agent')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
        "print(len(names))\n", timeout=300)
    assert int(out) > 50
