"""``python -m lmmr1_agent.align.probe``: can a fresh vision tower learn to read one family, and how fast?

Trains a bare vision tower (no language model) with a mean-pooled linear head on one number a VisualMath
family's figure shows (its first label slot: the clock's hour, point A's x, the red circles, the shaded strips)
and prints held-out accuracy every ``--every`` steps next to chance (the most common held-out label). It is the
quickest way to tell a family the tower learns to see from one it does not.

Two towers (``--tower``), the only difference between runs: ``qwen``, the Qwen2.5-VL tower + merger that
the embedded VLM had before the ResNet (224 px); measured here (`--family counting --steps 75`, 1 thread beside
another job), the red-circle count went from 51.5 % (always guessing 0, the chance line) to 64.0 % held-out after
2,400 figures, while the clock's hour stayed at chance (4–11 %) after 4,800 figures. ``resnet``, the BatchNorm
ResNet that :mod:`lmmr1_agent.models.fastvlm` puts in FastVLM (112 px, 49 tokens); with the same head and schedule
(batch 32, lr 1e-3) on one core, at about 100 figures/s, it first reached ≥ 95 % held-out on the clock's hour after
3,840 figures (37 training CPU-seconds; chance 11 %), shaded_fraction after 7,680 (75 s; chance 37 %), bar_chart
after 10,240 (94 s; chance 10.5 %) and counting after 11,520 (117 s; chance 51.5 %), ending at 97–100 % after 200–270 s.
Counting was measured with its BatchNorm statistics recomputed before each measurement (``--bn-recal``, on by
default for this tower); without that its held-out accuracy fell to 0–13 % at some measurements while the
training loss stayed low (the other three were measured without it; shaded_fraction once dipped to 79 %).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lmmr1_agent.align.data import FAMILY_NAMES, NUM_VALUES, draw_rows
from lmmr1_agent.align.phases import recalibrate_batchnorm
from lmmr1_agent.cli import (
    ArgumentParser,
    ConfigError,
    add_config_options,
    check_count,
    check_number,
    config_from_args,
    option,
    run_main,
)

TOWERS = ("qwen", "resnet")
#: Per tower: (default --image-size, default --bn-recal).
TOWER_DEFAULTS = {"qwen": (224, 0), "resnet": (112, 256)}
#: BatchNorm recalibration draws training-split figures from this seed on, which no training step reaches.
RECAL_FIRST_SEED = 1_000_000_000


@dataclass(frozen=True)
class Tower:
    """A vision tower under probe: the module trained, how rows become its inputs, and its pooled features."""

    name: str
    module: nn.Module
    hidden: int  # width of a pooled feature
    image_size: int  # figure side in pixels
    tokens: int  # image tokens per figure
    inputs: Callable[[Sequence[dict]], tuple[torch.Tensor, ...]]
    features: Callable[..., torch.Tensor]  # features(*inputs) -> (figures, hidden), mean over the image tokens


def qwen_tower(*, depth: int, width: int, window: int, image_size: int, hidden: int = 576) -> Tower:
    """A freshly initialised Qwen2.5-VL vision tower + merger (4 heads, MLP 3 × width, patch 14, merge 2), the
    tower the embedded VLM had before the ResNet."""
    from transformers import Qwen2VLImageProcessorPil
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

    vision = {"depth": depth, "hidden_size": width, "num_heads": 4, "intermediate_size": 3 * width, "patch_size": 14,
              "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": window}
    config = Qwen2_5_VLVisionConfig(**vision, out_hidden_size=hidden, fullatt_block_indexes=[depth - 1])
    config._attn_implementation = "sdpa"
    module = Qwen2_5_VisionTransformerPretrainedModel(config).float()
    processor = Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=image_size**2, patch_size=14,
                                         temporal_patch_size=2, merge_size=2)

    def features(pixel_values: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        return module(pixel_values, grid_thw=grid).pooler_output.view(len(grid), -1, hidden).mean(dim=1)

    def inputs(rows: Sequence[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        out = processor(images=[row["image"] for row in rows], return_tensors="pt")
        return out["pixel_values"], out["image_grid_thw"]

    return Tower("qwen", module, hidden, image_size, (image_size // 28) ** 2, inputs, features)


def resnet_tower(*, image_size: int) -> Tower:
    """A fresh BatchNorm ResNet, built from FastVLM's vision config exactly as FastVLM builds its tower."""
    from transformers import AutoModel

    from lmmr1_agent.models.fastvlm import image_pixels, image_seq_length, resnet_vision_config

    config = resnet_vision_config()
    module = AutoModel.from_config(config).float()

    def features(pixel_values: torch.Tensor) -> torch.Tensor:
        return module(pixel_values).last_hidden_state.mean(dim=(2, 3))  # (B, C, H, W): H×W cells are the tokens

    return Tower("resnet", module, config.hidden_size, image_size, image_seq_length(image_size),
                 lambda rows: (image_pixels([row["image"] for row in rows], image_size),), features)


def probe(family: str, tower: Tower, *, steps: int, batch: int, lr: float, held_out: int, every: int,
          bn_recal: int = 0, seed: int = 0, log=print) -> list[dict]:
    """Train ``tower`` + head and return the curve ``[{"step", "images", "seconds", "loss", "accuracy", "chance"}]``.

    ``bn_recal`` > 0 recomputes the BatchNorm statistics on that many fresh training figures before each
    measurement (:func:`recalibrate_batchnorm`). ``tower``'s weights must be initialised before the call;
    ``seed`` seeds the head and the training figures.
    """
    torch.manual_seed(seed)
    head = nn.Sequential(nn.LayerNorm(tower.hidden), nn.Linear(tower.hidden, NUM_VALUES))
    params = [*tower.module.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)

    def figures(split: str, first_seed: int, count: int) -> list[dict]:
        return draw_rows(split, first_seed, count, [family], [1], tower.image_size)

    def logits(inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return head(tower.features(*inputs))

    def labels(rows: Sequence[dict]) -> torch.Tensor:
        return torch.tensor([r["labels"][0] for r in rows])

    test = figures("test", 0, held_out)
    chance = Counter(r["labels"][0] for r in test).most_common(1)[0][1] / len(test)
    test_parts = [(tower.inputs(test[i:i + batch]), labels(test[i:i + batch])) for i in range(0, len(test), batch)]
    curve, start = [], time.monotonic()
    for step in range(steps):
        # ---- train step: linear 20-step warm-up, clipped AdamW ----
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 20)
        rows = figures("train", seed * 1_000_003 + step * batch, batch)
        tower.module.train()
        loss = nn.functional.cross_entropy(logits(tower.inputs(rows)), labels(rows))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if (step + 1) % every and step + 1 != steps:
            continue
        # ---- measure: fresh BatchNorm statistics, then held-out accuracy in eval mode ----
        if bn_recal:
            first = RECAL_FIRST_SEED + seed * 1_000_003 + len(curve) * bn_recal
            recalibrate_batchnorm(tower.module, lambda inputs: tower.features(*inputs),
                                  (tower.inputs(figures("train", first + i, min(batch, bn_recal - i)))
                                   for i in range(0, bn_recal, batch)))  # drawn one batch at a time
        tower.module.eval()
        with torch.no_grad():
            right = sum(int((logits(inputs).argmax(-1) == y).sum()) for inputs, y in test_parts)
        point = {"step": step + 1, "images": (step + 1) * batch, "seconds": round(time.monotonic() - start, 1),
                 "loss": round(loss.item(), 3), "accuracy": right / len(test), "chance": chance}
        curve.append(point)
        log(f"[probe] {family} step {point['step']} ({point['images']} figures, {point['seconds']:.0f} s): "
            f"held-out {point['accuracy']:.1%} (chance {chance:.1%}), loss {point['loss']}")
    return curve


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _labels_default(name: str):
    """A default the probe shares with the alignment run (its phase 1 trains the same way)."""
    from lmmr1_agent.align.run import AlignConfig

    return getattr(AlignConfig, name)


@dataclass
class ProbeConfig:
    """Every setting of a probe run (``python -m lmmr1_agent.align.probe --help`` lists them)."""

    family: str = option("clock", "VisualMath family (difficulty 1)", choices=FAMILY_NAMES)
    tower: str = option("qwen", "qwen: the Qwen2.5-VL tower + merger; resnet: FastVLM's BatchNorm ResNet",
                        choices=TOWERS)
    steps: int = option(150, "training steps")
    batch: int = option(_labels_default("labels_batch"), "figures per step")
    lr: float = option(_labels_default("labels_lr"), "peak learning rate (AdamW, 20-step warm-up)")
    depth: int = option(6, "qwen tower blocks")
    width: int = option(192, "qwen tower hidden size")
    window: int = option(112, "qwen attention window in pixels (the last block is full)")
    image_size: int | None = option(None, "figure side in pixels (qwen: a multiple of 28, default 224; resnet: a "
                                    "multiple of 16, default 112)", type=int)
    bn_recal: int | None = option(None, "fresh training figures that recompute the BatchNorm statistics before each "
                                  "measurement (resnet only; default 256, 0: off)", type=int)
    held_out: int = option(200, "test-split figures to measure on")
    every: int = option(25, "steps between measurements")
    threads: int = option(_labels_default("threads"), "torch CPU threads")

    def __post_init__(self) -> None:
        size, recal = TOWER_DEFAULTS.get(self.tower, (None, None))
        self.image_size = size if self.image_size is None else self.image_size
        self.bn_recal = recal if self.bn_recal is None else self.bn_recal

    def validate(self) -> ProbeConfig:
        """Raise ConfigError naming the first bad setting."""
        for name in ("steps", "batch", "held_out", "every", "depth", "width", "threads"):
            check_count(f"--{name.replace('_', '-')}", getattr(self, name))
        check_number("--lr", self.lr)
        if self.bn_recal < 0:
            raise ConfigError(f"--bn-recal must be 0 or more figures, got {self.bn_recal}")
        if self.tower == "qwen":
            if self.bn_recal:
                raise ConfigError(f"--bn-recal {self.bn_recal}: the qwen tower has no BatchNorm (use --tower resnet)")
            if self.image_size < 28 or self.window < 28 or self.image_size % 28 or self.window % 28:
                raise ConfigError(f"--image-size and --window must be positive multiples of 28, got "
                                  f"{self.image_size} and {self.window}")
            if self.width < 4 or self.width % 4 or (self.width // 4) % 4:
                raise ConfigError(f"--width must split into 4 heads of a size divisible by 4, got {self.width}")
        elif self.image_size < 16 or self.image_size % 16:
            raise ConfigError(f"--image-size must be a positive multiple of 16 for the resnet tower, got "
                              f"{self.image_size}")
        return self


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m lmmr1_agent.align.probe", description=__doc__.split("\n\n")[0])
    add_config_options(parser, ProbeConfig)
    try:
        config = config_from_args(ProbeConfig, parser.parse_args(argv)).validate()
    except ConfigError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    image_size, bn_recal = config.image_size, config.bn_recal
    torch.set_num_threads(config.threads)
    torch.manual_seed(0)  # the tower's initial weights
    if config.tower == "qwen":
        tower = qwen_tower(depth=config.depth, width=config.width, window=config.window, image_size=image_size)
    else:
        tower = resnet_tower(image_size=image_size)
    _log(f"[probe] {tower.name} tower: {sum(p.numel() for p in tower.module.parameters()):,} parameters, "
        f"{tower.tokens} tokens per {image_size} px figure" + (f", BatchNorm recalibrated on {bn_recal} figures"
                                                                if bn_recal else ""))
    probe(config.family, tower, steps=config.steps, batch=config.batch, lr=config.lr, held_out=config.held_out,
          every=config.every, bn_recal=bn_recal, log=_log)
    return 0


if __name__ == "__main__":
    run_main(main)  # a bad setting: one line on stderr, exit status 2
