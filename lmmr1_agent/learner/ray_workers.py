"""Ray: env runners and the learner as actors, on a local cluster or one you join (``num_env_runners > 0``).

The split is RLlib's (an ``EnvRunnerGroup`` of env-runner actors, a ``Learner`` actor); the driver (this
process) runs the training loop and moves plain data only.

- **Runners**: each :class:`RunnerActor` holds its envs and a policy copy. A step's prompts (whole GRPO
  groups) are dealt to the runners round-robin; sampling seeds are a pure function of (run seed, step,
  prompt, sample), so which runner plays a group never changes its episodes.
- **Weights**: after each update the learner's weights become one object in the object store; every runner
  fetches it once and records its version, which its episodes carry (``final_info["weights_version"]``).
- **Faults**: a runner that dies (process killed, node lost) is replaced by a fresh actor loaded with the
  current weights, and its groups are re-played from the same seeds; the step completes with every sample
  and ``ray/runner_restarts`` counts it. A learner that dies ends the run with :class:`LearnerDied`; rerunning
  the same command resumes from the last checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmmr1_agent.learner.config import ConfigError, StageConfig
from lmmr1_agent.learner.runner import EnvRunner, step_envs
from lmmr1_agent.learner.samples import Sample
from lmmr1_agent.learner.workers import LearnerDied, LearnerHost, runner_policy
from lmmr1_agent.rollout import Episode

#: The object store of a local cluster: this much plus twice the weights (docs/machine.md: the default takes GBs).
BASE_OBJECT_STORE_MB = 256


def _quiet_actor(num_cpus: float) -> None:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(max(1, int(num_cpus)))


class RunnerActor:
    """An env runner on its own actor: envs + a policy copy → episodes."""

    def __init__(self, config: dict[str, Any], model_path: str):
        stage = StageConfig(**config)
        _quiet_actor(stage.runner_num_cpus)
        self.runner = EnvRunner(stage, runner_policy(stage, model_path))

    def pid(self) -> int:
        return os.getpid()

    def placement(self) -> tuple[str, str | None]:
        """``(node id, placement group id)`` of this actor."""
        return _placement()

    def load_weights(self, weights: dict[str, np.ndarray], version: int) -> int:
        with warnings.catch_warnings():  # the arrays are read-only views of the object store, only copied from
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            self.runner.load_weights({k: torch.from_numpy(v) for k, v in weights.items()}, version)
        return version

    def collect(self, step: int, prompts: list[int]) -> tuple[list[Episode], list[int], float]:
        tick = time.monotonic()
        episodes, groups = self.runner.collect(step, prompts)
        return episodes, groups, time.monotonic() - tick

    def evaluate(self, prompts: int, temperature: float, part: int, parts: int) -> list[Episode]:
        return self.runner.evaluate(prompts, temperature, part, parts)


def endpoint() -> tuple[str, int]:
    """This node's address and a free port on it: where rank 0 of the learners' process group listens."""
    import ray

    from lmmr1_agent.learner.zero import free_port

    return ray.util.get_node_ip_address(), free_port()


class LearnerActor(LearnerHost):
    """A learner on its own actor (where the accelerator is, on a cluster): rank ``rank`` of ``world``
    data-parallel DeepSpeed learners, or the one torch learner."""

    def __init__(self, config: dict[str, Any], model_path: str, rank: int = 0, world: int = 1,
                 address: str = "127.0.0.1", port: int | None = None):
        stage = StageConfig(**config)
        _quiet_actor(stage.learner_num_cpus)
        super().__init__(stage, model_path, rank, world, address, port)

    def pid(self) -> int:
        return os.getpid()

    def placement(self) -> tuple[str, str | None]:
        return _placement()

    def weights_arrays(self) -> dict[str, np.ndarray]:
        """The weights as NumPy arrays: Ray stores them out of band and runners read them without a copy
        (pickled torch tensors took 4-8x longer to move here). NumPy has no bfloat16: those travel as float32 and
        the runner's ``load_state_dict`` casts them back into its own weights. Every rank takes part (ZeRO-3
        gathers); rank 0's are the ones sent."""
        weights = self.weights()
        if self.learner.rank:
            return {}
        return {k: (v.detach().float() if v.dtype == torch.bfloat16 else v.detach()).cpu().numpy()
                for k, v in weights.items()}


def _placement() -> tuple[str, str | None]:
    import ray

    context = ray.get_runtime_context()
    return context.get_node_id(), context.get_placement_group_id()


def _resources(cpus: float, gpus: float, memory_mb: int) -> dict[str, Any]:
    options: dict[str, Any] = {"num_cpus": cpus, "num_gpus": gpus}
    if memory_mb:
        options["memory"] = memory_mb * 2**20
    return options


def _bundle(*options: dict[str, Any]) -> dict[str, float]:
    """A placement-group bundle holding the resources of actors with ``options``."""
    bundle = {"CPU": sum(o["num_cpus"] for o in options), "GPU": sum(o["num_gpus"] for o in options),
              "memory": sum(o.get("memory", 0) for o in options)}
    return {k: v for k, v in bundle.items() if v > 0}


#: How long a placement group may wait for the cluster's resources before the run stops saying what it asked for.
PLACEMENT_TIMEOUT_S = 300


def place(config: StageConfig, learner: dict[str, Any], runner: dict[str, Any]):
    """``(learner options per rank, runner options per runner)`` in one placement group, or None to let Ray place
    actors freely (one learner, no colocation: today's default).

    - ``colocate``: bundle ``i`` holds learner rank ``i`` and runner ``i`` (the same node, their GPU shares on the same
      GPU when each asks for a fraction: ``--learner-num-gpus 0.5 --runner-num-gpus 0.5``);
    - otherwise, with several learner ranks: a bundle per rank and per runner, so no two ranks share a GPU (NCCL
      refuses that), packed onto as few nodes as the cluster allows.
    """
    import ray
    from ray.util.placement_group import placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    world, runners = config.learner_num_workers, config.num_env_runners
    if not config.colocate and world == 1:
        return None
    if config.colocate:
        bundles = [_bundle(learner, runner) for _ in range(world)]
        learner_at, runner_at = list(range(world)), list(range(runners))
    else:
        bundles = [_bundle(learner) for _ in range(world)] + [_bundle(runner) for _ in range(runners)]
        learner_at, runner_at = list(range(world)), list(range(world, world + runners))
    group = placement_group(bundles, strategy="PACK")
    ready, _ = ray.wait([group.ready()], timeout=PLACEMENT_TIMEOUT_S)
    if not ready:
        ray.util.remove_placement_group(group)
        raise ConfigError(f"Ray could not place {len(bundles)} bundles {bundles} in {PLACEMENT_TIMEOUT_S} s: the "
                          f"cluster has {ray.cluster_resources()}; ask for fewer learner ranks, runners or GPUs")

    def at(options: dict[str, Any], index: int) -> dict[str, Any]:
        return {**options, "scheduling_strategy": PlacementGroupSchedulingStrategy(
            placement_group=group, placement_group_bundle_index=index)}

    return [at(learner, i) for i in learner_at], [at(runner, i) for i in runner_at], group


def _say(message: str) -> None:
    print(f"[lmmr1] {message}", file=sys.stderr, flush=True)


def connect(config: StageConfig, model_path: str) -> bool:
    """Join ``config.ray_address``, or start a local cluster (docs/machine.md's settings); True if we started one.

    An already connected driver (a test sharing one cluster) is used as it is.
    """
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # Actors import what the driver imports from its working folder (your env modules, `tests`).
    cwd = os.getcwd()
    paths = os.environ.get("PYTHONPATH", "")
    if cwd not in paths.split(os.pathsep):
        os.environ["PYTHONPATH"] = cwd + (os.pathsep + paths if paths else "")
    if config.ray_address:
        ray.init(address=config.ray_address)
        return False
    weights = Path(model_path) / "model.safetensors"
    weights_mb = weights.stat().st_size / 2**20 if weights.is_file() else 0
    store_mb = config.ray_object_store_mb or int(BASE_OBJECT_STORE_MB + 2 * weights_mb)
    needed = config.num_env_runners * config.runner_num_cpus + config.learner_num_workers * config.learner_num_cpus
    ray.init(num_cpus=max(os.cpu_count() or 1, math.ceil(needed)), object_store_memory=store_mb * 2**20,
             include_dashboard=False)
    return True


class RayWorkers:
    """``num_env_runners`` runner actors and ``learner_num_workers`` learner actors (data-parallel ranks of one
    DeepSpeed learner, or the torch learner), with the same calls as ``LocalWorkers``."""

    def __init__(self, config: StageConfig, model_path: str):
        import ray

        self.ray, self.config, self.model_path = ray, config, model_path
        self.started = connect(config, model_path)
        self.plain = dataclasses.asdict(config)
        self.learners, self.runners, self.group = [], [], None
        try:
            self._start()
        except BaseException:  # actors, the placement group and a cluster we started go with the failed start
            self.close()
            raise

    def _start(self) -> None:
        ray, config, model_path = self.ray, self.config, self.model_path
        world = config.learner_num_workers
        learner = _resources(config.learner_num_cpus, config.learner_num_gpus, config.learner_memory_mb)
        runner = _resources(config.runner_num_cpus, config.runner_num_gpus, config.runner_memory_mb)
        placed = place(config, learner, runner)
        self.group = placed[2] if placed else None
        learners = placed[0] if placed else [learner] * world
        self.runner_options = placed[1] if placed else [runner] * config.num_env_runners
        address, port = "127.0.0.1", None
        if world > 1:  # rank 0's node hosts the process group: ask a task placed like rank 0 where that is
            address, port = ray.get(ray.remote(endpoint).options(**learners[0]).remote())
        self.learners = [ray.remote(LearnerActor).options(**learners[rank]).remote(self.plain, model_path, rank, world,
                                                                                  address, port)
                         for rank in range(world)]
        self.runners = [self._new_runner(k) for k in range(config.num_env_runners)]
        self.version, self.weights_ref, self.restarts = 0, None, 0
        #: Per collect: ``ray/runner_restarts`` and ``perf/ray_overhead_seconds`` (rollout wall time beyond the
        #: slowest runner's own playing time).
        self.collect_metrics: dict[str, float] = {}
        self._learner("pid")
        self._on_runners({k: ("pid", ()) for k in range(len(self.runners))})

    def _new_runner(self, k: int):
        """Runner ``k`` (in its placement-group bundle where there is one: a replacement takes the dead one's)."""
        return self.ray.remote(RunnerActor).options(**self.runner_options[k]).remote(self.plain, self.model_path)

    def _learner(self, method: str, *args: Any) -> Any:
        """Every learner rank runs ``method`` (DeepSpeed's collectives need them all); rank 0's result."""
        try:
            return self.ray.get([getattr(learner, method).remote(*args) for learner in self.learners])[0]
        except self.ray.exceptions.RayActorError as exc:
            raise LearnerDied(f"the learner actor died during {method} ({type(exc).__name__}); its last checkpoint "
                              "is intact: rerun the same command to resume from it") from None

    def _wait(self, refs: list) -> None:
        try:
            self.ray.get(refs)
        except self.ray.exceptions.RayActorError as exc:
            raise LearnerDied(f"a learner actor died ({type(exc).__name__}); its last checkpoint is intact: rerun the "
                              "same command to resume from it") from None

    def _alive(self, runner) -> bool:
        try:
            self.ray.get(runner.pid.remote(), timeout=60)
            return True
        except (self.ray.exceptions.RayActorError, self.ray.exceptions.GetTimeoutError):
            return False

    def _on_runners(self, tasks: dict[int, tuple[str, tuple]]) -> dict[int, Any]:
        """Run ``tasks[k] = (method, args)`` on runner ``k``; a runner that dies is replaced and its task rerun."""
        ray = self.ray
        pending = {getattr(self.runners[k], method).remote(*args): k for k, (method, args) in tasks.items()}
        results: dict[int, Any] = {}
        restarts = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            k = pending.pop(ready[0])
            try:
                results[k] = ray.get(ready[0])
                continue
            except ray.exceptions.RayActorError as exc:
                if self._alive(self.runners[k]):  # the runner is fine: an argument's owner (the learner) died
                    raise LearnerDied(f"the learner actor died ({type(exc).__name__}); its last checkpoint is "
                                      "intact: rerun the same command to resume from it") from None
                reason = type(exc).__name__
            restarts += 1
            if restarts > self.config.max_runner_restarts:
                raise RuntimeError(f"env runners died {restarts} times in one call (last: runner {k}, {reason}); "
                                   f"max_runner_restarts is {self.config.max_runner_restarts}")
            method, args = tasks[k]
            _say(f"env runner {k} died during {method} ({reason}): restarting it with weights v{self.version} "
                 "and re-running its work from the same seeds")
            ray.kill(self.runners[k], no_restart=True)
            self.runners[k] = self._new_runner(k)
            if self.weights_ref is not None:
                ray.get(self.runners[k].load_weights.remote(self.weights_ref, self.version))
            pending[getattr(self.runners[k], method).remote(*args)] = k
        self.restarts += restarts
        return results

    def restore(self, checkpoint: Path) -> dict[str, Any]:
        return self._learner("restore", str(checkpoint))

    def collect(self, step: int) -> tuple[list[Episode], list[int]]:
        """Deal the step's groups to the runners; merge the episodes into the in-process runner's order."""
        self.restarts = 0
        batch, n = self.config.rollout_batch_size, len(self.runners)
        shares = {k: list(range(k, batch, n)) for k in range(n) if k < batch}
        tick = time.monotonic()
        results = self._on_runners({k: ("collect", (step, prompts)) for k, prompts in shares.items()})
        wall = time.monotonic() - tick
        envs = step_envs(self.config, step)
        played = [(group - step * batch, j, episode, group) for episodes, groups, _ in results.values()
                  for j, (episode, group) in enumerate(zip(episodes, groups))]
        played.sort(key=lambda p: (envs[p[0]], p[0], p[1]))
        self.collect_metrics = {"ray/runner_restarts": self.restarts,
                                "perf/ray_overhead_seconds": wall - max(s for _, _, s in results.values())}
        return [p[2] for p in played], [p[3] for p in played]

    def update(self, samples: list[Sample]) -> dict[str, float]:
        """The learner's update, then its new weights to every runner as one object fetched once by each."""
        metrics = self._learner("update", self.ray.put(samples)) if samples else {}
        tick = time.monotonic()
        self.version += 1
        refs = [learner.weights_arrays.remote() for learner in self.learners]
        self.weights_ref = refs[0]
        self._on_runners({k: ("load_weights", (self.weights_ref, self.version)) for k in range(len(self.runners))})
        self._wait(refs[1:])
        return {**metrics, "perf/sync_seconds": time.monotonic() - tick, "ray/weights_version": self.version}

    def evaluate(self, prompts: int, temperature: float) -> list[Episode]:
        """The held-out evaluation split over the runners, merged back into plan order."""
        n = len(self.runners)
        parts = self._on_runners({k: ("evaluate", (prompts, temperature, k, n)) for k in range(n)})
        merged: list[Episode] = [None] * sum(len(p) for p in parts.values())  # type: ignore[list-item]
        for k, episodes in parts.items():
            merged[k::n] = episodes
        return merged

    def save_checkpoint(self, stage_dir: Path, step: int, state: dict[str, Any]) -> None:
        self._learner("save_checkpoint", str(stage_dir), step, state)

    def save_final(self, final: Path, summary: dict) -> None:
        self._learner("save_final", str(final), summary)

    def close(self) -> None:
        """Stop the actors, and the local cluster if this run started it."""
        for actor in [*self.learners, *self.runners]:
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - an actor that is already gone needs no stopping
                pass
        if self.group is not None:
            try:
                self.ray.util.remove_placement_group(self.group)
            except Exception:  # noqa: BLE001 - a cluster already gone holds no group
                pass
        if self.started:
            self.ray.shutdown()
