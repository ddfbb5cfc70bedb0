"""Shared fixtures. Tests never reach the network and build whatever data they need at run time."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


@pytest.fixture
def run_python():
    """Run a Python snippet in a fresh interpreter and return its stdout (fails the test on error)."""

    def run(code: str, timeout: float = 120) -> str:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    return run


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    """A tiny random Llama chat model folder (SmolLM2's template, a tokenizer trained at run time), built once per
    session; tests read it and never write into it."""
    from tests.tiny_models import build_llama

    return build_llama(tmp_path_factory.mktemp("tiny-llama"), max_positions=2048)


@contextlib.contextmanager
def local_ray(num_cpus: int, **env: str):
    """A local Ray cluster (docs/machine.md's settings: no auth, a 256 MB object store, no dashboard) whose processes
    import this checkout and see ``env``; the environment is restored and the cluster stopped afterwards."""
    import ray

    env = {"RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(Path(__file__).resolve().parents[1]), **env}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    ray.init(num_cpus=num_cpus, object_store_memory=256 * 1024**2, include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
