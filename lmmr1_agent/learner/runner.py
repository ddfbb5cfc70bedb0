"""The env-runner half of a training step: which envs a step draws, rollouts of the current policy as episodes,
held-out evaluations and their summary; it takes the learner's weights by name (:meth:`EnvRunner.load_weights`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from lmmr1_agent.agents.hf import HFAgent
from lmmr1_agent.learner.config import StageConfig
from lmmr1_agent.models.parts import frozen_prefixes
from lmmr1_agent.rollout import Episode, play_episodes, sampling_seed
from lmmr1_agent.stats import mean_stderr

#: Seeds of different runs (and of eval vs train) never meet: each run's train seeds start at seed × STRIDE.
SEED_STRIDE = 10_000_000
#: Stands in for the step in evaluation sampling seeds (no training run reaches this step).
EVAL_KEY = 2**32 - 1


def step_envs(config: StageConfig, step: int) -> np.ndarray:
    """Which env of the mixture each prompt of training ``step`` plays (a pure function of seed and step)."""
    rng = np.random.default_rng([config.seed, step])
    return rng.choice(len(config.envs), size=config.rollout_batch_size, p=mixture_weights(config))


def mixture_weights(config: StageConfig) -> np.ndarray:
    """The env mixture's weights, normalised to sum to 1."""
    weights = np.array([float(e.get("weight", 1.0)) for e in config.envs])
    return weights / weights.sum()


class EnvRunner:
    """Plays GRPO groups: each prompt is one env seed reset ``n`` times, so the group sees one task.

    Everything random is a pure function of (run seed, step, prompt index, sample index): which env a prompt
    draws, its env seed and its sampling seeds. Any runner playing any subset of a step's prompts therefore
    produces exactly the episodes the in-process runner would (what Ray's runners and their restarts rely on).
    """

    def __init__(self, config: StageConfig, agent: HFAgent):
        self.config, self.agent = config, agent
        self.weights = mixture_weights(config)
        #: The version of the weights this runner plays with (0: the stage's starting weights).
        self.version = 0

    def _make(self, index: int, split: str):
        spec = self.config.envs[index]
        return lambda: gym.make(spec["id"], **{**spec.get("kwargs", {}), "split": split})

    def collect(self, step: int, prompts: Sequence[int] | None = None) -> tuple[list[Episode], list[int]]:
        """Episodes of training ``step`` for ``prompts`` (indices into the step's batch; default all of them),
        each group's ``n`` samples together, and their group ids."""
        cfg = self.config
        choices = step_envs(cfg, step)
        wanted = range(cfg.rollout_batch_size) if prompts is None else sorted(prompts)
        n = cfg.n_samples_per_prompt
        episodes, groups = [], []
        for env_index in sorted(set(choices.tolist())):
            mine = [i for i in wanted if choices[i] == env_index]
            if not mine:
                continue
            seeds = [cfg.seed * SEED_STRIDE + step * cfg.rollout_batch_size + i for i in mine]
            played = play_episodes(self._make(env_index, "train"), self.agent, [s for s in seeds for _ in range(n)],
                                   env_id=cfg.envs[env_index]["id"], batch_size=len(mine) * n, history=cfg.history,
                                   demonstration=cfg.demonstration, max_turns=cfg.max_turns,
                                   sampling_seeds=[sampling_seed(cfg.seed, step, i, j) for i in mine for j in range(n)])
            for episode in played:
                episode.final_info["weights_version"] = self.version
                episodes.append(episode)
            groups.extend(step * cfg.rollout_batch_size + i for i in mine for _ in range(n))
        self._rest()
        return episodes, groups

    def _rest(self) -> None:
        """A rollout over: a rollout engine that frees its memory for the update does it now (a vLLM engine that
        shares its GPU with the learner sleeps until its next weights or prompts)."""
        sleep = getattr(self.agent, "sleep", None)
        if sleep is not None:
            sleep()

    def eval_plan(self, prompts: int) -> list[tuple[int, int]]:
        """The held-out evaluation as ``(env index, test seed)`` pairs: ``prompts`` spread over the mixture."""
        share = np.floor(self.weights * prompts).astype(int)
        share[0] += prompts - share.sum()
        return [(index, seed) for index, count in enumerate(share.tolist()) for seed in range(count)]

    def evaluate(self, prompts: int, temperature: float, part: int = 0, parts: int = 1) -> list[Episode]:
        """Part ``part`` of ``parts`` of the held-out evaluation (one sample per test seed), in plan order.

        Sampling seeds depend on the run seed and the test seed only: every evaluation of a run (before and
        after training) draws with the same noise, which makes their difference less noisy.
        """
        saved = self.agent.temperature
        self.agent.temperature = temperature
        plan = self.eval_plan(prompts)[part::parts]
        episodes: list[Episode] = []
        try:
            for index in sorted({i for i, _ in plan}):
                seeds = [seed for i, seed in plan if i == index]
                episodes.extend(play_episodes(
                    self._make(index, "test"), self.agent, seeds, batch_size=16, history=self.config.history,
                    demonstration=self.config.demonstration, max_turns=self.config.max_turns,
                    sampling_seeds=[sampling_seed(self.config.seed, EVAL_KEY, index, seed) for seed in seeds]))
        finally:
            self.agent.temperature = saved
        self._rest()
        return episodes

    def load_weights(self, state_dict: dict[str, torch.Tensor] | None, version: int | None = None) -> None:
        """Take the learner's new weights: every trainable weight, by name (``None``: the runner shares the model).

        Only the frozen prefixes may be missing (they never change); any other missing or unexpected name is an
        error, never a runner left silently on stale weights.
        """
        if state_dict is not None and not hasattr(self.agent, "model"):  # a vLLM engine: it reloads by name
            self.agent.load_weights(state_dict)
        elif state_dict is not None:
            missing, unexpected = self.agent.model.load_state_dict(state_dict, strict=False)
            frozen = frozen_prefixes(self.agent.model, self.config.freeze_prefix)
            missing = [k for k in missing if not (frozen and k.startswith(frozen))]
            if missing or unexpected:
                raise RuntimeError(f"the learner's weights do not fit the runner's model: missing {missing[:5]}, "
                                   f"unexpected {unexpected[:5]}")
        self.version = self.version + 1 if version is None else version


def summarize_eval(episodes: Sequence[Episode]) -> dict[str, Any]:
    """Mean held-out return, format rate and accuracy of ``episodes``, each with its standard error; the
    accuracy of each family the envs name (``info["family"]``); and every episode's ``outcomes`` (return,
    format, success) in plan order, from which :func:`paired_change` measures what training changed."""
    returns = [e.total_return for e in episodes]
    formats = [float(e.reward_terms.get("format", 0.0) > 0) for e in episodes]
    successes = [float(bool(e.success)) for e in episodes]
    families: dict[str, list[float]] = {}
    for episode, success in zip(episodes, successes):
        if episode.final_info.get("family"):
            families.setdefault(str(episode.final_info["family"]), []).append(success)
    return {**_mean_se("reward", returns), **_mean_se("format", formats), **_mean_se("accuracy", successes),
            "by_family": {name: {"accuracy": float(np.mean(v)), "n": len(v)} for name, v in sorted(families.items())},
            "outcomes": {"reward": returns, "format": formats, "accuracy": successes}}


def paired_change(before: dict, after: dict, name: str) -> tuple[float, float] | None:
    """``(after − before, its standard error)`` of metric ``name`` over the same held-out prompts.

    Both evaluations play the same test seeds with the same sampling noise (:meth:`EnvRunner.evaluate`), so the
    standard error is that of the per-prompt differences — far below either evaluation's own when training
    changed few answers. None when either evaluation lacks per-prompt outcomes (a run from an older version).
    """
    a, b = before.get("outcomes", {}).get(name), after.get("outcomes", {}).get(name)
    if a is None or b is None or len(a) != len(b):
        return None
    return mean_stderr([y - x for x, y in zip(a, b)])


def _mean_se(name: str, values: Sequence[float]) -> dict[str, float]:
    mean, se = mean_stderr(values)
    return {name: mean, f"{name}_se": se}
