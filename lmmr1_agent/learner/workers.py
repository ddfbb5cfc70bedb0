"""Where a stage's env runners and learner live: in this process, or on Ray (:mod:`.ray_workers`).

Both kinds are :class:`Workers`, so the training loop in :mod:`lmmr1_agent.train` is one function for either.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol

import torch

from lmmr1_agent.agents.hf import HFAgent
from lmmr1_agent.devices import resolve_device, resolve_dtype
from lmmr1_agent.learner.checkpoint import load_trainer_state, save_checkpoint
from lmmr1_agent.learner.config import StageConfig
from lmmr1_agent.learner.runner import EnvRunner
from lmmr1_agent.learner.samples import Sample
from lmmr1_agent.learner.trainer import Learner
from lmmr1_agent.models.saving import DEMONSTRATION_ATTRIBUTE, save_model_folder
from lmmr1_agent.rollout import Episode

SUMMARY = "summary.json"


class Workers(Protocol):
    """What the training loop asks of a stage's runners and learner, wherever they live."""

    #: What the latest ``collect`` adds to the step's metrics.
    collect_metrics: dict[str, float]

    def restore(self, checkpoint: Path) -> dict[str, Any]:
        """Load a checkpoint into the learner (and the runners); returns its trainer state."""

    def collect(self, step: int) -> tuple[list[Episode], list[int]]:
        """Play the step's rollout episodes; returns them with their GRPO group ids."""

    def update(self, samples: list[Sample]) -> dict[str, float]:
        """One policy update on ``samples``, the runners then given the new weights; returns its metrics."""

    def evaluate(self, prompts: int, temperature: float) -> list[Episode]:
        """Held-out episodes (``split="test"``) of the current policy."""

    def save_checkpoint(self, stage_dir: Path, step: int, state: dict[str, Any]) -> None:
        """Write a resumable checkpoint of step ``step``."""

    def save_final(self, final: Path, summary: dict) -> None:
        """Write the stage's result folder."""

    def close(self) -> None:
        """Release the runners and the learner (Ray actors, threads)."""


class LearnerDied(RuntimeError):
    """The learner (a Ray actor) is gone; the run stops with its last checkpoint intact."""


def stage_policy(config: StageConfig, model_path: str) -> HFAgent:
    """The policy of a stage, as the runners and the learner load it."""
    device = resolve_device(config.device)
    # Under Ray, runners and the learner must sample and score in one precision: the learner's GPUs decide.
    where = ("cuda" if config.learner_num_gpus > 0 else "cpu") if config.num_env_runners else device
    agent = HFAgent(model_path, temperature=config.temperature, max_new_tokens=config.generate_max_len,
                    seed=config.seed, demonstration=config.demonstration, max_pixels=config.max_pixels,
                    device=device, dtype=resolve_dtype(config.dtype, where),
                    attn_implementation=None if config.attn_implementation == "auto" else config.attn_implementation)
    # checkpoints and final/ remember the prompt they were trained with: evaluate then sends the same by default
    setattr(agent.model.config, DEMONSTRATION_ATTRIBUTE, bool(config.demonstration))
    return agent


def save_final(final: Path, agent: HFAgent, summary: dict) -> None:
    """The stage's result: a ``save_pretrained`` folder whose ``summary.json``, written last, marks it done."""
    tmp = Path(tempfile.mkdtemp(prefix=".final-", dir=final.parent))
    save_model_folder(tmp, agent.model, agent.processor)
    (tmp / SUMMARY).write_text(json.dumps(summary, indent=2))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


class LearnerHost:
    """The learner's side of a stage: the policy being trained, its optimizer and its checkpoints."""

    def __init__(self, config: StageConfig, model_path: str):
        torch.manual_seed(config.seed)  # a critic head is the only fresh initialisation
        self.agent = stage_policy(config, model_path)
        self.learner = Learner(config, self.agent.policy)
        self.config = config

    def restore(self, checkpoint: str) -> dict[str, Any]:
        state = load_trainer_state(Path(checkpoint), self.learner.optimizer, self.learner.scheduler,
                                   self.learner.extra_state())
        if state.get("start"):
            self.learner.load_reference(state["start"])
        return state

    def update(self, samples: list[Sample]) -> dict[str, float]:
        return self.learner.update(samples)

    def weights(self) -> dict[str, torch.Tensor]:
        """The weights the runners need: everything but the frozen prefixes (they never change)."""
        frozen = self.learner.frozen
        return {k: v for k, v in self.learner.state_dict().items() if not (frozen and k.startswith(frozen))}

    def save_checkpoint(self, stage_dir: str, step: int, state: dict[str, Any]) -> None:
        save_checkpoint(Path(stage_dir), step, self.agent.model, self.agent.processor, self.learner.optimizer,
                        self.learner.scheduler, state, keep=self.config.keep_checkpoints,
                        extra=self.learner.extra_state())

    def save_final(self, final: str, summary: dict) -> None:
        save_final(Path(final), self.agent, summary)


class LocalWorkers:
    """Runner and learner in this process, sharing one model (``num_env_runners: 0``)."""

    #: What a collect adds to the step's metrics (Ray's restarts and overhead; nothing in-process).
    collect_metrics: dict[str, float] = {}

    def __init__(self, config: StageConfig, model_path: str):
        self.host = LearnerHost(config, model_path)
        self.runner = EnvRunner(config, self.host.agent)

    def restore(self, checkpoint: Path) -> dict[str, Any]:
        return self.host.restore(str(checkpoint))

    def collect(self, step: int) -> tuple[list[Episode], list[int]]:
        return self.runner.collect(step)

    def update(self, samples: list[Sample]) -> dict[str, float]:
        metrics = self.host.update(samples) if samples else {}
        self.runner.load_weights(None)  # runner and learner share one model: nothing to copy
        return {**metrics, "perf/sync_seconds": 0.0}

    def evaluate(self, prompts: int, temperature: float) -> list[Episode]:
        return self.runner.evaluate(prompts, temperature)

    def save_checkpoint(self, stage_dir: Path, step: int, state: dict[str, Any]) -> None:
        self.host.save_checkpoint(str(stage_dir), step, state)

    def save_final(self, final: Path, summary: dict) -> None:
        self.host.save_final(str(final), summary)

    def close(self) -> None:
        """Nothing to release in-process."""
