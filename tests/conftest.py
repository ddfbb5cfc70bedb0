"""Shared fixtures. Tests never reach the network and build whatever data they need at run time."""

from __future__ import annotations

import os
import subprocess
import sys

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
