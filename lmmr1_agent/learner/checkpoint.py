"""Checkpoints written atomically: a killed run resumes from the last complete one, never a half-written one.

A checkpoint is a ``save_pretrained`` folder (loadable by the Hugging Face agent and vLLM) plus
``optimizer.pt`` / ``rng.pt`` (tensors only, read back with ``weights_only=True``) and
``trainer_state.json`` (step, seed cursor, scheduler, Python and NumPy RNG states, logger offset). It is
built in a hidden temporary folder and renamed into place as the last step.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "trainer_state.json"


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def save_checkpoint(stage_dir: Path, step: int, model, tokenizer, optimizer, scheduler, state: dict[str, Any],
                    keep: int = 2, extra: dict[str, Any] | None = None) -> Path:
    """Write ``stage_dir/checkpoints/step_{step:06d}`` atomically and keep the ``keep`` newest.

    ``extra`` maps names to objects with ``state_dict()`` (a critic, its optimizer), saved as ``NAME.pt``.
    """
    root = Path(stage_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = root / f".step_{step:06d}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save({"torch": torch.get_rng_state()}, tmp / "rng.pt")
    for name, thing in (extra or {}).items():
        torch.save(thing.state_dict(), tmp / f"{name}.pt")
    full_state = {**state, "step": step, "scheduler": scheduler.state_dict(),
                  "python_rng": _python_state(), "numpy_rng": np.random.get_state(legacy=False)}
    (tmp / STATE_FILE).write_text(json.dumps(full_state, default=_json_default), encoding="utf-8")
    _fsync_tree(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in sorted(p for p in root.glob("step_*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(stage_dir: Path) -> Path | None:
    """The newest complete checkpoint of a stage, or None. Leftover temporary folders are ignored."""
    root = Path(stage_dir) / "checkpoints"
    done = sorted(p for p in root.glob("step_*") if (p / STATE_FILE).is_file()) if root.is_dir() else []
    return done[-1] if done else None


def load_trainer_state(checkpoint: Path, optimizer, scheduler, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Restore optimizer, scheduler, ``extra`` objects and RNG states from ``checkpoint``; return its state."""
    state = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
    for name, thing in (extra or {}).items():
        thing.load_state_dict(torch.load(checkpoint / f"{name}.pt", weights_only=True))
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(torch.load(checkpoint / "rng.pt", weights_only=True)["torch"])
    version, internal, gauss = state["python_rng"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(state["numpy_rng"])
    return state


def _python_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in trainer_state.json")
