"""Where a stage's env runners and learner live: in this process, or on Ray (:mod:`.ray_workers`).

Both kinds are :class:`Workers`, so the training loop in :mod:`lmmr1_agent.train` is one function for either.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

import torch

from lmmr1_agent.agents.hf import HFAgent
from lmmr1_agent.devices import resolve_device, resolve_dtype
from lmmr1_agent.learner.checkpoint import checkpoint_temporary, commit_checkpoint, load_trainer_state, save_checkpoint
from lmmr1_agent.learner.config import ConfigError, StageConfig
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


def runner_policy(config: StageConfig, model_path: str):
    """The policy an env runner samples with: the stage's Hugging Face policy, or a vLLM engine holding its
    weights (``rollout_engine: vllm``), which takes the learner's weights after every update."""
    if config.rollout_engine == "vllm":
        from lmmr1_agent.agents.vllm_engine import VLLMPolicyAgent

        return VLLMPolicyAgent(model_path, temperature=config.temperature, max_new_tokens=config.generate_max_len,
                               seed=config.seed, demonstration=config.demonstration, max_pixels=config.max_pixels,
                               dtype=config.dtype, gpu_memory_utilization=config.vllm_gpu_memory_utilization,
                               tensor_parallel_size=config.vllm_tensor_parallel_size,
                               sleep=config.rollout_shares_learner_gpu)
    return stage_policy(config, model_path)


def save_final(final: Path, agent: HFAgent, summary: dict, state_dict: dict | None = None) -> None:
    """The stage's result: a ``save_pretrained`` folder whose ``summary.json``, written last, marks it done."""
    tmp = Path(tempfile.mkdtemp(prefix=".final-", dir=final.parent))
    save_model_folder(tmp, agent.model, agent.processor, state_dict)
    (tmp / SUMMARY).write_text(json.dumps(summary, indent=2))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


class LearnerHost:
    """The learner's side of a stage: the policy being trained, its optimizer and its checkpoints.

    With ``zero_stage >= 0`` the learner is DeepSpeed's (:mod:`lmmr1_agent.learner.zero`), one of ``world``
    data-parallel ranks whose process group meets at ``address:port`` (one rank alone needs neither).
    """

    def __init__(self, config: StageConfig, model_path: str, rank: int = 0, world: int = 1, address: str = "127.0.0.1",
                 port: int | None = None):
        torch.manual_seed(config.seed)  # a critic head is the only fresh initialisation
        self.agent = stage_policy(config, model_path)
        self.config = config
        if config.zero_stage >= 0:
            from lmmr1_agent.learner.zero import ZeroLearner, init_distributed

            init_distributed(str(self.agent.policy.device), rank, world, address, port)
            self.learner: Learner = ZeroLearner(config, self.agent.policy)
        else:
            self.learner = Learner(config, self.agent.policy)
        self.zero = config.zero_stage >= 0

    def restore(self, checkpoint: str) -> dict[str, Any]:
        if self.zero:
            self.learner.load_states(Path(checkpoint))
            state = load_trainer_state(Path(checkpoint), None, self.learner.scheduler)
            # DeepSpeed restores the moments, not the learning rate the schedule had reached
            for group, lr in zip(self.learner.optimizer.param_groups, self.learner.scheduler.get_last_lr()):
                group["lr"] = lr
        elif (Path(checkpoint) / "deepspeed").is_dir():
            raise ConfigError(f"checkpoint {checkpoint} was written by the DeepSpeed learner: resume it with the same "
                              "--zero-stage")
        else:
            state = load_trainer_state(Path(checkpoint), self.learner.optimizer, self.learner.scheduler,
                                       self.learner.extra_state())
        if state.get("start"):
            self.learner.load_reference(state["start"])
        return state

    def update(self, samples: list[Sample]) -> dict[str, float]:
        metrics = self.learner.update(samples)
        config = self.config
        if config.rollout_engine == "vllm" and config.rollout_shares_learner_gpu and torch.cuda.is_available():
            torch.cuda.empty_cache()  # what the update held goes back, for the vLLM engine's KV cache when it wakes
        return metrics

    def weights(self) -> dict[str, torch.Tensor]:
        """The weights the runners need: everything but the frozen prefixes (they never change). DeepSpeed: every
        rank must call it (ZeRO-3 gathers); the others get the same."""
        frozen = self.learner.frozen
        return {k: v for k, v in self.learner.state_dict().items() if not (frozen and k.startswith(frozen))}

    def save_checkpoint(self, stage_dir: str, step: int, state: dict[str, Any]) -> None:
        if not self.zero:
            save_checkpoint(Path(stage_dir), step, self.agent.model, self.agent.processor, self.learner.optimizer,
                            self.learner.scheduler, state, keep=self.config.keep_checkpoints,
                            extra=self.learner.extra_state())
            return
        # every rank writes its engine states into one folder (rank 0's name), then rank 0 finishes it
        from lmmr1_agent.learner.zero import broadcast

        rank = self.learner.rank
        token = broadcast(f"{os.getpid()}" if rank == 0 else None)
        tmp = Path(stage_dir) / "checkpoints" / f".step_{step:06d}.tmp-{token}"
        if rank == 0:
            tmp = checkpoint_temporary(Path(stage_dir), step, token)
        torch.distributed.barrier()
        self.learner.save_states(tmp)
        weights = self.learner.full_state_dict()
        torch.distributed.barrier()
        if rank == 0:
            save_model_folder(tmp, self.agent.model, self.agent.processor, weights)
            commit_checkpoint(tmp, Path(stage_dir), step, self.learner.scheduler, state, self.config.keep_checkpoints)
        torch.distributed.barrier()

    def save_final(self, final: str, summary: dict) -> None:
        weights = self.learner.full_state_dict() if self.zero else None
        if self.learner.rank == 0:
            save_final(Path(final), self.agent, summary, weights)


class LocalWorkers:
    """Runner and learner in this process, sharing one model (``num_env_runners: 0``)."""

    #: What a collect adds to the step's metrics (Ray's restarts and overhead; nothing in-process).
    collect_metrics: dict[str, float] = {}

    def __init__(self, config: StageConfig, model_path: str):
        self.host = LearnerHost(config, model_path)
        self.shared = config.rollout_engine == "hf"
        self.runner = EnvRunner(config, self.host.agent if self.shared else runner_policy(config, model_path))

    def restore(self, checkpoint: Path) -> dict[str, Any]:
        return self.host.restore(str(checkpoint))

    def collect(self, step: int) -> tuple[list[Episode], list[int]]:
        return self.runner.collect(step)

    def update(self, samples: list[Sample]) -> dict[str, float]:
        metrics = self.host.update(samples) if samples else {}
        tick = time.monotonic()
        # runner and learner share one model (nothing to copy), or the runner's vLLM engine takes the new weights
        self.runner.load_weights(None if self.shared else self.host.weights())
        return {**metrics, "perf/sync_seconds": time.monotonic() - tick}

    def evaluate(self, prompts: int, temperature: float) -> list[Episode]:
        return self.runner.evaluate(prompts, temperature)

    def save_checkpoint(self, stage_dir: Path, step: int, state: dict[str, Any]) -> None:
        self.host.save_checkpoint(str(stage_dir), step, state)

    def save_final(self, final: Path, summary: dict) -> None:
        self.host.save_final(str(final), summary)

    def close(self) -> None:
        """Nothing to release in-process."""
