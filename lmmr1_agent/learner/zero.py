"""The DeepSpeed learner (``--zero-stage 0|1|2|3``): the torch learner's update with DeepSpeed's ZeRO engines as
its optimizers, in one process or data-parallel over several (one per GPU, Ray actors; ``--learner-num-workers``).

What is DeepSpeed's and what stays ours:

- **Ours**: the update itself (:meth:`Learner.update`: experience, micro-batches, loss scaling, the exact
  zero-advantage skipping), the schedule (a ``LambdaLR`` stepped once per training step), the reference model (a
  plain frozen copy on each rank) and the checkpoint format (a ``save_pretrained`` folder plus state files, written
  atomically).
- **DeepSpeed's**: the optimizer step (``torch.optim.AdamW`` as its client optimizer, so nothing compiles),
  gradient accumulation in the caller's hands (``managed_gradient_accumulation: false``: every backward accumulates,
  every :meth:`ZeroUpdater.step` is a boundary), the data-parallel reduction, clipping to ``max_norm`` over the
  whole gradient, float32 masters for bfloat16 weights, ZeRO's partitioning, optimizer offload, and its skipping of a
  step whose gradient is not finite.

On a CPU DeepSpeed runs with ``DS_ACCELERATOR=cpu`` and the gloo backend (docs/machine.md); on GPUs with NCCL.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from lmmr1_agent.cli import ConfigError
from lmmr1_agent.learner.config import StageConfig
from lmmr1_agent.learner.trainer import Learner
from lmmr1_agent.policy import Policy

#: Where the engines' states live inside a checkpoint folder.
STATE_FOLDER = "deepspeed"


def import_deepspeed(device: str):
    """``deepspeed``, set up for ``device`` (a CPU needs ``DS_ACCELERATOR=cpu`` before the first import); a
    ConfigError naming the extra when it is not installed."""
    if not device.startswith("cuda"):
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    try:
        import deepspeed
    except ImportError:
        raise ConfigError("--zero-stage needs DeepSpeed: pip install 'lmmr1[deepspeed]' (or use --zero-stage -1, the "
                          "torch learner)") from None
    return deepspeed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def init_distributed(device: str, rank: int = 0, world: int = 1, address: str = "127.0.0.1",
                     port: int | None = None) -> None:
    """Join (or, alone, start) the learners' process group: gloo on a CPU, NCCL on GPUs. Each rank sees one device
    (Ray gives each learner actor its own GPU), so its local rank is 0. Already initialised: nothing to do."""
    deepspeed = import_deepspeed(device)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": "0", "MASTER_ADDR": address,
                       "MASTER_PORT": str(port or free_port())})
    if device.startswith("cuda"):
        torch.cuda.set_device(0 if device == "cuda" else int(device.partition(":")[2]))
    deepspeed.init_distributed(dist_backend="nccl" if device.startswith("cuda") else "gloo", auto_mpi_discovery=False,
                               verbose=False)


def engine_config(config: StageConfig, bfloat16: bool, world: int) -> dict[str, Any]:
    """The DeepSpeed config of one network's engine."""
    zero: dict[str, Any] = {"stage": config.zero_stage}
    if config.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    if config.zero_stage == 3:
        # every weight is partitioned (the default keeps small ones whole on every rank)
        zero["stage3_param_persistence_threshold"] = 0
    return {
        "train_micro_batch_size_per_gpu": config.micro_train_batch_size,
        "gradient_accumulation_steps": 1,
        "train_batch_size": config.micro_train_batch_size * world,
        "managed_gradient_accumulation": False,
        "gradient_clipping": config.max_norm,
        "bf16": {"enabled": bfloat16},
        # float32 accumulation where DeepSpeed offers it (its stage 0 refuses bfloat16 weights with it)
        "data_types": {"grad_accum_dtype": "fp32"} if bfloat16 and config.zero_stage >= 1 else {},
        "zero_optimization": zero,
        # the client optimizer (torch AdamW) may run on the CPU states: DeepSpeed's own compiles for minutes
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 2**31 - 1,
        "wall_clock_breakdown": False,
    }


class ZeroUpdater:
    """One network's DeepSpeed engine, with :class:`~lmmr1_agent.learner.trainer.TorchUpdater`'s calls."""

    #: A ZeRO step finalises the gradients its backward passes reduced: a step with none runs a zero-weighted pass.
    steps_without_backward = False

    def __init__(self, module: torch.nn.Module, weights: list[torch.nn.Parameter], lr: float, config: StageConfig,
                 world: int):
        deepspeed = import_deepspeed(str(next(module.parameters()).device))
        self.optimizer = torch.optim.AdamW(weights, lr=lr, betas=tuple(config.adam_betas),
                                           weight_decay=config.weight_decay)
        bfloat16 = next(module.parameters()).dtype == torch.bfloat16
        self.engine, *_ = deepspeed.initialize(model=module, optimizer=self.optimizer,
                                               config=engine_config(config, bfloat16, world))
        self.forward = self.engine  # the engine's forward: ZeRO counts micro-batches there
        self.stage = config.zero_stage
        self.weights = weights

    def zero_grad(self) -> None:
        """Nothing: the engine clears its gradients after every step."""

    def backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss, scale_wrt_gas=False)

    def clip(self, empty: bool) -> float | None:
        """The gradient's norm where it is known before the step (ZeRO-0: the local gradients, this rank's), else
        None: ZeRO stages clip inside the step and skip a non-finite one themselves."""
        if self.stage == 0:
            grads = [p.grad for p in self.weights if p.grad is not None]
            return float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0
        return None

    def discard(self) -> None:
        """Drop the accumulated gradient. ZeRO-1-3 step on it (their overflow check finds it non-finite and skips,
        clearing it: every rank must join that step); ZeRO-0 clears its local gradients."""
        if self.stage == 0:
            self.engine.zero_grad()
        else:
            self.engine.step()

    def step(self) -> float | None:
        self.engine.step()
        if not self.engine.was_step_applied():
            return None
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else 0.0

    def state(self, name: str) -> dict[str, Any]:
        return {}  # the engine's checkpoint holds its masters (save / load below)

    def save(self, folder: Path, tag: str) -> None:
        """The engine's states (optimizer partitions, masters) into ``folder/tag``; collective."""
        self.engine.save_checkpoint(str(folder), tag=tag, save_latest=False)

    def load(self, folder: Path, tag: str) -> None:
        check_state_files(folder / tag)
        path, _ = self.engine.load_checkpoint(str(folder), tag=tag, load_optimizer_states=True,
                                              load_lr_scheduler_states=False, load_module_strict=True)
        if path is None:
            raise ConfigError(f"DeepSpeed found no state to resume in {folder / tag}")


def check_state_files(folder: Path) -> None:
    """DeepSpeed reads its checkpoint files with pickle (``weights_only=False``): first check that each one holds
    tensors and plain data only (``weights_only=True`` with DeepSpeed's own plain-data classes allowed), so a file
    swapped into a checkpoint runs no code."""
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    safe = [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]
    for path in sorted(Path(folder).glob("*.pt")):
        try:
            with torch.serialization.safe_globals(safe):
                torch.load(path, weights_only=True, map_location="cpu")
        except Exception as exc:  # noqa: BLE001 - any refusal means we do not hand it to pickle
            raise ConfigError(f"checkpoint file {path} holds more than tensors and plain data "
                              f"({' '.join(str(exc).split())[:200]}): not loading it") from None


class ZeroLearner(Learner):
    """:class:`~lmmr1_agent.learner.trainer.Learner` on DeepSpeed engines; data-parallel when the process group has
    several ranks (each joins every collective the same number of times: see ``Learner._layout``)."""

    def __init__(self, config: StageConfig, policy: Policy):
        init_distributed(str(policy.device))
        if torch.distributed.get_world_size() > 1:
            # a shared prompt runs as two forward passes, a full row as one: ranks would gather weights (ZeRO-3) or
            # fill gradient buckets (ZeRO-1/2) in different orders
            policy.share_prefix = False
        super().__init__(config, policy)

    def _ranks(self) -> tuple[int, int]:
        return torch.distributed.get_rank(), torch.distributed.get_world_size()

    def _updater(self, module, weights, lr):
        return ZeroUpdater(module, weights, lr, self.config, self.world)

    def _all_reduce(self, values: list[float], op: str = "sum") -> list[float]:
        if self.world == 1:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device="cuda" if _nccl() else "cpu")
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX if op == "max" else
                                     torch.distributed.ReduceOp.SUM)
        return tensor.tolist()

    @contextlib.contextmanager
    def gathered(self, module: torch.nn.Module | None = None) -> Iterator[torch.nn.Module]:
        """``module`` (the policy) with every weight whole for the duration: ZeRO-3 gathers its partitions (a
        collective every rank enters), other stages hold whole weights already."""
        module = self.model if module is None else module
        if self.config.zero_stage == 3:
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
                yield module
        else:
            yield module

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """The policy's whole weights (CPU copies); collective under ZeRO-3."""
        with self.gathered() as module:
            return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}

    def save_states(self, folder: Path) -> None:
        self.actor.save(folder / STATE_FOLDER, "actor")
        if self.critic_updater is not None:
            self.critic_updater.save(folder / STATE_FOLDER, "critic")

    def load_states(self, folder: Path) -> None:
        if not (folder / STATE_FOLDER / "actor").is_dir():
            raise ConfigError(f"checkpoint {folder} has no DeepSpeed states ({STATE_FOLDER}/actor): it was written "
                              "by the torch learner; resume it with --zero-stage -1")
        self.actor.load(folder / STATE_FOLDER, "actor")
        if self.critic_updater is not None:
            self.critic_updater.load(folder / STATE_FOLDER, "critic")

    def extra_state(self) -> dict[str, Any]:
        return {}  # the engines' states are saved by save_states

    def state_dict(self) -> dict[str, Any]:
        return self.full_state_dict()


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _nccl() -> bool:
    return torch.distributed.get_backend() == "nccl"


__all__ = ["STATE_FOLDER", "ZeroLearner", "ZeroUpdater", "broadcast", "check_state_files", "engine_config",
           "import_deepspeed", "init_distributed"]
