"""Checkpoints written atomically: a killed run resumes from the last complete one, never a half-written one.

A checkpoint is a ``save_pretrained`` folder (loadable by the Hugging Face agent and vLLM) plus
``optimizer.pt`` / ``rng.pt`` (tensors only, read back with ``weights_only=True``) and
``trainer_state.json`` (step, seed cursor, scheduler, Python and NumPy RNG states, logger offset). It is
built in a hidden temporary folder and renamed into place as the last step; ``trainer_state.json`` also lists
every file's size, so a checkpoint damaged later (a truncated copy, a full disk) is recognised and the
previous one used instead. A run folder has one writer at a time (:class:`RunLock`), and temporary folders
left by a killed writer are removed when the next one starts (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmmr1_agent.learner.config import ConfigError
from lmmr1_agent.models.saving import save_model_folder

STATE_FILE = "trainer_state.json"
LOCK_FILE = ".lock"
#: Hidden folders a writer builds before renaming them into place (checkpoints, final/, MGT's start model).
TEMPORARY_PATTERNS = ("checkpoints/.step_*.tmp-*", ".final-*", ".init-*")


class RunFolderBusy(ConfigError):
    """Another process is writing the same run folder."""


class RunLock:
    """An exclusive lock on a run folder for as long as this object is held (``with RunLock(dir): ...``).

    The kernel's ``flock`` holds it, so a killed holder frees it at once (no stale lock to clean up); the file
    keeps the holder's pid and host for the error message of whoever comes second.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self._handle = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunFolderBusy(f"run folder {self.path.parent} is in use by {holder}: wait for it to finish, or "
                                "pass another --output-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.truncate(0)
            self._handle.close()  # closing releases the flock
            self._handle = None


def remove_stale_temporaries(stage_dir: Path) -> list[Path]:
    """Delete the half-written folders a killed writer left in ``stage_dir``; returns what was removed.

    Call it holding the run's :class:`RunLock`: then no temporary folder can belong to a live writer.
    """
    removed = []
    for pattern in TEMPORARY_PATTERNS:
        for path in Path(stage_dir).glob(pattern):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def save_checkpoint(stage_dir: Path, step: int, model, tokenizer, optimizer, scheduler, state: dict[str, Any],
                    keep: int = 2, extra: dict[str, Any] | None = None) -> Path:
    """Write ``stage_dir/checkpoints/step_{step:06d}`` atomically and keep the ``keep`` newest.

    ``extra`` maps names to objects with ``state_dict()`` (a critic, its optimizer), saved as ``NAME.pt``.
    """
    tmp = checkpoint_temporary(stage_dir, step, str(os.getpid()))
    save_model_folder(tmp, model, tokenizer)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    for name, thing in (extra or {}).items():
        torch.save(thing.state_dict(), tmp / f"{name}.pt")
    return commit_checkpoint(tmp, stage_dir, step, scheduler, state, keep)


def checkpoint_temporary(stage_dir: Path, step: int, token: str) -> Path:
    """The empty hidden folder a checkpoint of ``step`` is built in (``token``: the writer's, one per run)."""
    root = Path(stage_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".step_{step:06d}.tmp-{token}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def commit_checkpoint(tmp: Path, stage_dir: Path, step: int, scheduler, state: dict[str, Any], keep: int) -> Path:
    """Finish the checkpoint built in ``tmp`` (the RNG states and ``trainer_state.json`` with every file's size,
    synced to disk), rename it into place and keep the ``keep`` newest."""
    root = Path(stage_dir) / "checkpoints"
    final = root / f"step_{step:06d}"
    torch.save({"torch": torch.get_rng_state()}, tmp / "rng.pt")
    full_state = {**state, "step": step, "scheduler": scheduler.state_dict(),
                  "python_rng": _python_state(), "numpy_rng": np.random.get_state(legacy=False)}
    files = sorted(p for p in tmp.rglob("*") if p.is_file())
    full_state["files"] = {p.relative_to(tmp).as_posix(): p.stat().st_size for p in files}
    (tmp / STATE_FILE).write_text(json.dumps(full_state, default=_json_default), encoding="utf-8")
    for path in [*files, tmp / STATE_FILE]:
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in sorted(p for p in root.glob("step_*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be resumed from (missing or unreadable state, a missing or truncated file), or None."""
    try:
        state = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"it has no {STATE_FILE}"
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"its {STATE_FILE} cannot be read ({type(exc).__name__})"
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        return f"its {STATE_FILE} has no step"
    # Checkpoints from before the file list was kept name no sizes: check that the essential files exist.
    files = state.get("files") or {"optimizer.pt": None, "rng.pt": None, "config.json": None}
    for name, size in files.items():
        path = checkpoint / name
        if not path.is_file():
            return f"{name} is missing"
        if size is not None and path.stat().st_size != size:
            return f"{name} is {path.stat().st_size} bytes, {size} were written"
    return None


def latest_checkpoint(stage_dir: Path, *, report=lambda line: print(line, file=sys.stderr)) -> Path | None:
    """The newest checkpoint of a stage that is complete and intact, or None when the stage never saved one.

    A damaged newer checkpoint is reported (through ``report``) and skipped; when every checkpoint is damaged
    the run stops with a :class:`ConfigError` rather than silently start again from step 0.
    """
    root = Path(stage_dir) / "checkpoints"
    found = sorted((p for p in root.glob("step_*") if p.is_dir()), reverse=True) if root.is_dir() else []
    problems = []
    for checkpoint in found:
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            for line in problems:
                report(f"[lmmr1] {line}; resuming from {checkpoint.name} instead")
            return checkpoint
        problems.append(f"checkpoint {checkpoint} is damaged: {problem}")
    if problems:
        raise ConfigError("; ".join(problems) + ": no intact checkpoint to resume from (delete the folder to start "
                          "the stage again)")
    return None


def load_trainer_state(checkpoint: Path, optimizer, scheduler, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Restore optimizer, scheduler, ``extra`` objects and RNG states from ``checkpoint``; return its state."""
    state = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    if optimizer is not None:  # None: the optimizer's states are loaded by its owner (DeepSpeed's engines)
        optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True, map_location="cpu"))
    for name, thing in (extra or {}).items():
        path = checkpoint / f"{name}.pt"
        if name.endswith("master_weights") and not path.is_file():
            continue  # a checkpoint written in float32: the masters start from the loaded weights
        thing.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(torch.load(checkpoint / "rng.pt", weights_only=True, map_location="cpu")["torch"])
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
