"""One config dataclass for a training stage; the YAML files in ``configs/`` mirror it key for key.

Names follow OpenRLHF's where they exist (``advantage_estimator``, ``n_samples_per_prompt``,
``init_kl_coef``, ``actor_learning_rate`` ...), so a paper preset carries over. Unknown keys and bad values
are one-line errors naming them; ``--help`` is generated from the field docs below.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lmmr1_agent.cli import ConfigError, add_config_options, check_env, check_model, option, parse_env_spec
from lmmr1_agent.devices import DEVICE_CHOICES, DTYPES, check_device_spec, resolve_device, resolve_dtype
from lmmr1_agent.learner.algorithms import AGGREGATIONS, ESTIMATORS, KL_ESTIMATORS
from lmmr1_agent.rollout import HISTORY_MODES

__all__ = ["FIELDS", "STAGES", "ConfigError", "StageConfig", "add_arguments", "check_envs", "load_yaml", "resolve"]

STAGES = ("fre", "mgt")
#: Attention kernels transformers offers (auto: its default for the model, sdpa where it has one).
ATTENTION = ("auto", "eager", "sdpa", "flash_attention_2")



@dataclass
class StageConfig:
    """Everything one stage of training needs (FRE on text envs, or MGT on multimodal envs)."""

    stage: str = option("fre", "stage: fre (text RL) or mgt (multimodal RL, starts from the FRE result)")
    model: str = option("embedded", "policy to start from: embedded, embedded-vl (aligned tower), embedded-vl-random, "
                    "a model folder or hub id")
    envs: list = option([{"id": "LMMR1/TextMath-v0", "weight": 1.0, "kwargs": {}}],
                    "env mixture: a list of {id, weight, kwargs}; --env ID replaces it with one env")
    advantage_estimator: str = option("group_norm", f"advantage estimator: {', '.join(ESTIMATORS)}")
    n_samples_per_prompt: int = option(8, "samples per prompt (one env seed): the GRPO group size")
    rollout_batch_size: int = option(4, "prompts (env seeds) per training step")
    train_batch_size: int = option(32, "sequences per optimizer step")
    micro_train_batch_size: int = option(8, "sequences per forward/backward (gradient accumulation in between)")
    max_epochs: int = option(1, "passes over each rollout batch")
    num_steps: int = option(40, "training steps (rollout + update) in this stage")
    actor_learning_rate: float = option(1e-5, "AdamW learning rate of the policy", alias="--lr")
    lr_scheduler: str = option("constant", "learning-rate schedule: constant, or cosine to 0.1 x lr after warm-up")
    lr_warmup_ratio: float = option(0.03, "share of steps spent warming the learning rate up (cosine schedule)")
    adam_betas: list = option([0.9, 0.95], "AdamW betas")
    weight_decay: float = option(0.0, "AdamW weight decay")
    max_norm: float = option(1.0, "gradient clipping norm")
    init_kl_coef: float = option(0.0, "KL coefficient beta; 0 loads no reference model at all")
    critic_learning_rate: float = option(9e-6, "AdamW learning rate of the critic (advantage_estimator gae only)")
    gamma: float = option(1.0, "discount (gae and reinforce; forced to 1 for the group estimators)")
    lambd: float = option(1.0, "GAE lambda")
    value_clip: float = option(0.2, "critic value clip around the old values")
    kl_estimator: str = option("k3", f"KL estimator: {', '.join(KL_ESTIMATORS)}")
    use_kl_loss: bool = option(False, "put the KL in the loss instead of the reward")
    eps_clip: float = option(0.2, "policy ratio clip epsilon")
    loss_aggregation: str = option("token", f"loss aggregation: {', '.join(AGGREGATIONS)}")
    entropy_coef: float = option(0.0, "entropy bonus coefficient")
    temperature: float = option(1.0, "sampling temperature for training rollouts")
    generate_max_len: int = option(48, "max new tokens per response")
    max_pixels: int = option(256 * 28 * 28, "Qwen-VL image processor upper bound on pixels per image (image tokens x "
                             "784); other families use their processor's own image sizes")
    freeze_prefix: list = option([], "parameters to freeze: vision_tower and projector (whatever the model's family "
                                 "calls them), or parameter-name prefixes as written (Qwen2.5-VL: model.visual.)")
    history: str = option("auto", "multi-turn prompts: full (one growing token sequence), last (latest observation), "
                      "auto (the env's choice: last for Football, full elsewhere)")
    max_turns: int = option(8, "turns per episode before it is cut (multi-turn envs)")
    demonstration: bool = option(True, "send the env's solved example exchange before the task")
    skip_zero_advantage_groups: bool = option(True, "skip groups whose advantages are all zero, exactly (the same "
                                              "update); on with group_norm or dr_grpo, init_kl_coef 0, entropy_coef 0")
    eval_prompts: int = option(128, "held-out (split=test) prompts per evaluation, one sample each")
    eval_temperature: float = option(1.0, "sampling temperature of evaluations (the training temperature)")
    eval_every: int = option(0, "evaluate every N steps (0: only before and after the stage)")
    save_every: int = option(10, "write a checkpoint every N steps")
    keep_checkpoints: int = option(2, "numbered checkpoints kept (the newest ones)")
    seed: int = option(0, "run seed: env seeds, sampling and initialisation derive from it")
    output_dir: str = option("runs/default", "run folder; fre/ and mgt/ live inside it")
    from_base: bool = option(False, "mgt only: start from model itself instead of this run's fre/final (the Direct-RL "
                             "baseline, or another run's FRE result)")
    threads: int = option(0, "torch CPU threads (0: torch's default)")
    device: str = option("auto", f"where the policy runs: {DEVICE_CHOICES} (auto: CUDA when torch sees one)")
    dtype: str = option("auto", f"the policy's weights: {', '.join(DTYPES)} (auto: bfloat16 on a GPU, float32 on a "
                        "CPU; under Ray, the learner's GPUs decide for all); bfloat16 trains float32 master weights")
    gradient_checkpointing: bool = option(False, "recompute activations in the backward pass (less memory, slower)")
    attn_implementation: str = option("auto", "attention kernel: auto (transformers' default, sdpa), eager, sdpa or "
                                      "flash_attention_2")
    rollout_engine: str = option("hf", "what samples the rollouts: hf (the policy's own generate) or vllm (a vLLM "
                                 "engine per env runner, weights reloaded in place after every update; the gpu extra)")
    vllm_gpu_memory_utilization: float = option(0.8, "vLLM: share of its GPU's memory an engine takes")
    vllm_tensor_parallel_size: int = option(1, "vLLM: GPUs per engine (tensor parallelism)")
    zero_stage: int = option(-1, "DeepSpeed ZeRO stage of the learner, 0-3 (the deepspeed extra); -1: the plain torch "
                             "learner, the default")
    offload_optimizer: bool = option(False, "DeepSpeed: keep the optimizer states in CPU memory (ZeRO-Offload)")
    learner_num_workers: int = option(1, "data-parallel learner actors, one per GPU (DeepSpeed, Ray: needs "
                                      "zero_stage >= 0 and num_env_runners >= 1 when above 1)")
    colocate: bool = option(False, "Ray: put learner rank i and env runner i in one placement-group bundle (one node; "
                            "on one GPU with fractional --learner-num-gpus / --runner-num-gpus); needs as many runners "
                            "as learner ranks")
    num_env_runners: int = option(0, "Ray env-runner actors (0: runner and learner in this process, the default)")
    ray_address: str = option("", "Ray cluster to join: auto, HOST:PORT or ray://...; empty starts a local one")
    ray_object_store_mb: int = option(0, "object store of a local Ray cluster in MB (0: 256 + twice the weights)")
    runner_num_cpus: float = option(1.0, "CPUs reserved per env-runner actor (also its torch threads)")
    runner_num_gpus: float = option(0.0, "GPUs reserved per env-runner actor")
    runner_memory_mb: int = option(0, "memory reserved per env-runner actor in MB (0: no reservation)")
    learner_num_cpus: float = option(1.0, "CPUs reserved for the learner actor (also its torch threads)")
    learner_num_gpus: float = option(0.0, "GPUs reserved for the learner actor")
    learner_memory_mb: int = option(0, "memory reserved for the learner actor in MB (0: no reservation)")
    max_runner_restarts: int = option(3, "env-runner restarts allowed per step before the run stops")

    @property
    def rollout_shares_learner_gpu(self) -> bool:
        """Whether an env runner's rollout engine shares its GPU with a learner: the in-process runner, or a
        colocated runner on a fraction of a GPU. A vLLM engine then sleeps while the learner updates."""
        return self.num_env_runners == 0 or (self.colocate and self.runner_num_gpus < 1)

    def validate(self) -> StageConfig:
        """Raise ConfigError on the first bad value, naming it."""
        checks = [
            (self.stage in STAGES, f"stage must be one of {STAGES}"),
            (self.advantage_estimator in ESTIMATORS, f"advantage_estimator must be one of {ESTIMATORS}"),
            (0 < self.gamma <= 1 and 0 <= self.lambd <= 1, "gamma must be in (0, 1] and lambd in [0, 1]"),
            (self.kl_estimator in KL_ESTIMATORS, f"kl_estimator must be one of {KL_ESTIMATORS}"),
            (self.loss_aggregation in AGGREGATIONS, f"loss_aggregation must be one of {AGGREGATIONS}"),
            (self.history in HISTORY_MODES, f"history must be one of {HISTORY_MODES}"),
            (self.lr_scheduler in ("constant", "cosine"), "lr_scheduler must be constant or cosine"),
            (self.n_samples_per_prompt >= 1 and self.rollout_batch_size >= 1, "batch sizes must be at least 1"),
            (self.advantage_estimator != "rloo" or self.n_samples_per_prompt >= 2,
             "rloo needs n_samples_per_prompt >= 2"),
            (self.micro_train_batch_size >= 1 and self.train_batch_size >= self.micro_train_batch_size,
             "train_batch_size must be at least micro_train_batch_size"),
            (self.num_steps >= 0 and self.generate_max_len >= 1, "num_steps >= 0 and generate_max_len >= 1"),
            (self.actor_learning_rate > 0, "actor_learning_rate must be positive"),
            (self.critic_learning_rate > 0, "critic_learning_rate must be positive"),
            (0 <= self.lr_warmup_ratio <= 1, f"lr_warmup_ratio must be in [0, 1], got {self.lr_warmup_ratio}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.max_norm > 0, f"max_norm must be positive, got {self.max_norm}"),
            (self.eps_clip > 0 and self.value_clip >= 0, "eps_clip must be positive and value_clip >= 0"),
            (self.temperature > 0 and self.eval_temperature >= 0, "temperature must be positive"),
            # 0 held-out prompts would print "0.000 ± 0.000" as if it were a measurement
            (self.eval_prompts >= 1, f"eval_prompts must be at least 1 (every stage is evaluated before and after), "
                                     f"got {self.eval_prompts}"),
            (self.eval_every >= 0 and self.save_every >= 1 and self.keep_checkpoints >= 1,
             "eval_every must be >= 0, save_every and keep_checkpoints >= 1"),
            (self.max_epochs >= 1 and self.max_turns >= 1 and self.max_pixels >= 1 and self.threads >= 0,
             "max_epochs, max_turns and max_pixels must be at least 1, threads >= 0"),
            (self.init_kl_coef >= 0, "init_kl_coef must be >= 0"),
            (len(self.adam_betas) == 2 and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1
                                               for b in self.adam_betas),
             f"adam_betas must be two numbers in [0, 1), got {self.adam_betas}"),
            (all(isinstance(p, str) for p in self.freeze_prefix),
             f"freeze_prefix must be a list of strings, got {self.freeze_prefix}"),
            (bool(self.envs), "envs must list at least one environment"),
            (self.num_env_runners >= 0 and self.max_runner_restarts >= 0,
             "num_env_runners and max_runner_restarts must be >= 0"),
            (self.rollout_engine in ("hf", "vllm"), f"rollout_engine must be hf or vllm, got {self.rollout_engine!r}"),
            (0 < self.vllm_gpu_memory_utilization <= 1 and self.vllm_tensor_parallel_size >= 1,
             "vllm_gpu_memory_utilization must be in (0, 1] and vllm_tensor_parallel_size at least 1"),
            (-1 <= self.zero_stage <= 3, f"zero_stage must be -1 (the torch learner) or a ZeRO stage 0-3, got "
                                         f"{self.zero_stage}"),
            (not self.offload_optimizer or self.zero_stage >= 1,
             "offload_optimizer needs a ZeRO stage of 1 or more (--zero-stage)"),
            (self.learner_num_workers >= 1, f"learner_num_workers must be at least 1, got {self.learner_num_workers}"),
            (self.learner_num_workers == 1 or self.zero_stage >= 0,
             "learner_num_workers > 1 is data parallelism through DeepSpeed: pass --zero-stage 0-3 too"),
            (self.learner_num_workers == 1 or self.num_env_runners >= 1,
             "learner_num_workers > 1 runs the learners as Ray actors: pass --num-env-runners 1 or more too"),
            (not self.colocate or self.num_env_runners == self.learner_num_workers,
             f"colocate pairs each learner rank with an env runner: --num-env-runners must be "
             f"{self.learner_num_workers} (--learner-num-workers), got {self.num_env_runners}"),
            (min(self.runner_num_cpus, self.runner_num_gpus, self.learner_num_cpus, self.learner_num_gpus,
                 self.runner_memory_mb, self.learner_memory_mb, self.ray_object_store_mb) >= 0,
             "Ray resources must be >= 0"),
        ]
        for name in FIELDS:
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}")
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        try:
            check_model(self.model)
        except ValueError as exc:
            raise ConfigError(f"model: {exc}") from None
        try:
            check_device_spec(self.device)
            resolve_dtype(self.dtype, "cpu")
            if self.num_env_runners == 0 and not self.ray_address:  # Ray actors check on their own machines
                resolve_device(self.device)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self.attn_implementation not in ATTENTION:
            raise ConfigError(f"attn_implementation must be one of {', '.join(ATTENTION)}, got "
                              f"{self.attn_implementation!r}")
        for i, env in enumerate(self.envs):
            if not isinstance(env, dict) or "id" not in env or set(env) - {"id", "weight", "kwargs"}:
                raise ConfigError(f"envs[{i}] must be {{id, weight, kwargs}}, got {env!r}")
            weight = env.get("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight < math.inf:
                raise ConfigError(f"envs[{i}] ({env['id']}) needs a positive weight, got {weight!r}")
            if not isinstance(env.get("kwargs", {}), dict):
                raise ConfigError(f"envs[{i}] ({env['id']}): kwargs must be a mapping, got {env['kwargs']!r}")
        return self


def check_envs(envs: list[dict], from_cli: bool = False) -> None:
    """Build every env of the mixture once per split (train for rollouts, test for evaluations), before any model
    loads; a ConfigError names the env as the user did (``--env ID`` or ``envs[i] (ID)``) and what is wrong."""
    for i, env in enumerate(envs):
        label = f"--env {env['id']}" if from_cli else f"envs[{i}] ({env['id']})"
        for split in ("train", "test"):
            check_env(env["id"], {**env.get("kwargs", {}), "split": split}, label)


FIELDS = {f.name: f for f in dataclasses.fields(StageConfig)}


def read_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file that must hold a mapping (a stage config, a sweep, an arm); a ConfigError names the file when it is
    missing, not UTF-8, not YAML or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path.name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name} must be a mapping of config keys")
    return data


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A config file's keys; unknown keys are an error naming the key and the file."""
    path = Path(path)
    data = read_mapping(path)
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{path.name}: unknown config key {unknown[0]!r}")
    return data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--option`` per config field (plus aliases such as ``--lr``), help from the field docs; ``--env`` takes
    one env spec in place of the mixture."""
    parser.add_argument("--env", dest="envs", metavar="ID[:JSON]",
                        help="train on this one env (optionally with JSON kwargs) instead of the mixture")
    # the CLI's own --stage chooses which stages run
    add_config_options(parser, StageConfig, skip=("stage", "envs"), layered=True)


def resolve(values: dict[str, Any], overrides: dict[str, Any]) -> StageConfig:
    """Defaults < YAML ``values`` < command-line ``overrides`` (None means not given)."""
    merged = {**values, **{k: v for k, v in overrides.items() if v is not None and k in FIELDS}}
    from_cli = isinstance(merged.get("envs"), str)
    if from_cli:
        env_id, kwargs = parse_env_spec(merged["envs"])
        merged["envs"] = [{"id": env_id, "weight": 1.0, "kwargs": kwargs}]
    try:
        config = StageConfig(**merged)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None
    for name, f in FIELDS.items():
        value = getattr(config, name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            setattr(config, name, float(value))
        elif type(value) is not type(default) and not (isinstance(default, float) and isinstance(value, float)):
            raise ConfigError(f"{name} must be {type(default).__name__}, got {value!r}")
    config.validate()
    check_envs(config.envs, from_cli)
    return config
