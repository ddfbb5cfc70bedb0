"""``python -m lmmr1_agent.align.probe``: can a fresh vision tower learn to read one family, and how fast?

Trains a bare Qwen2.5-VL vision tower (no language model) with a mean-pooled linear head on one number a
VisualMath family's figure shows (its first label slot: the clock's hour, point A's x, the red circles, the
shaded strips) and prints held-out accuracy every ``--every`` steps next to chance (the most common held-out
label). It is the quickest way to tell a family the tower learns to see from one it does not: measured here
(`--family counting --steps 75`, 1 thread beside another job), the red-circle count went from 51.5 % (always
guessing 0, the chance line) to 64.0 % held-out after 2,400 figures, while the clock's hour stayed at chance
(4–11 %) after 4,800 figures (the script this probe was made from: same tower, head and schedule, window 224).
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter

import torch
from torch import nn

from lmmr1_agent.align.data import FAMILY_NAMES, NUM_VALUES, draw_rows
from lmmr1_agent.align.phases import pixels
from lmmr1_agent.align.run import AlignConfig
from lmmr1_agent.cli import ArgumentParser, run_main


def build_tower(depth: int, width: int, window: int, hidden: int):
    """A freshly initialised Qwen2.5-VL vision tower + merger shaped as ``python -m lmmr1_agent.align`` shapes it."""
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

    vision = AlignConfig(depth=depth, width=width, window=window).vision
    config = Qwen2_5_VLVisionConfig(**vision, out_hidden_size=hidden, fullatt_block_indexes=[depth - 1])
    config._attn_implementation = "sdpa"
    return Qwen2_5_VisionTransformerPretrainedModel(config).float()


def probe(family: str, *, steps: int, batch: int, lr: float, depth: int, width: int, window: int, image_size: int,
          held_out: int, every: int, seed: int = 0, hidden: int = 576, log=print) -> list[dict]:
    """Train and return the curve ``[{"step", "images", "seconds", "accuracy", "chance"}]``."""
    from transformers import Qwen2VLImageProcessorPil

    torch.manual_seed(seed)
    tower = build_tower(depth, width, window, hidden)
    head = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, NUM_VALUES))
    processor = Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=image_size**2, patch_size=14,
                                         temporal_patch_size=2, merge_size=2)
    params = [*tower.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)

    def encode(rows):
        return *pixels(processor, rows), torch.tensor([r["labels"][0] for r in rows])

    def logits(pixel_values, grid):
        tokens = tower(pixel_values, grid_thw=grid).pooler_output.view(len(grid), -1, hidden)
        return head(tokens.mean(dim=1))

    test = draw_rows("test", 0, held_out, [family], [1], image_size)
    chance = Counter(r["labels"][0] for r in test).most_common(1)[0][1] / len(test)
    test_parts = [encode(test[i:i + batch]) for i in range(0, len(test), batch)]
    curve, start = [], time.monotonic()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 20)
        pixel_values, grid, labels = encode(draw_rows("train", seed * 1_000_003 + step * batch, batch, [family], [1],
                                                      image_size))
        loss = nn.functional.cross_entropy(logits(pixel_values, grid), labels)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if (step + 1) % every == 0 or step + 1 == steps:
            with torch.no_grad():
                right = sum(int((logits(p, g).argmax(-1) == y).sum()) for p, g, y in test_parts)
            point = {"step": step + 1, "images": (step + 1) * batch, "seconds": round(time.monotonic() - start, 1),
                     "loss": round(loss.item(), 3), "accuracy": right / len(test), "chance": chance}
            curve.append(point)
            log(f"[probe] {family} step {point['step']} ({point['images']} figures, {point['seconds']:.0f} s): "
                f"held-out {point['accuracy']:.1%} (chance {chance:.1%}), loss {point['loss']}")
    return curve


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m lmmr1_agent.align.probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", choices=FAMILY_NAMES, default="clock", help="VisualMath family (difficulty 1)")
    parser.add_argument("--steps", type=int, default=150, help="training steps")
    parser.add_argument("--batch", type=int, default=32, help="figures per step")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (AdamW, 20-step warm-up)")
    parser.add_argument("--depth", type=int, default=6, help="tower blocks")
    parser.add_argument("--width", type=int, default=192, help="tower hidden size")
    parser.add_argument("--window", type=int, default=112, help="attention window in pixels (the last block is full)")
    parser.add_argument("--image-size", type=int, default=224, help="figure side in pixels (a multiple of 28)")
    parser.add_argument("--held-out", type=int, default=200, help="test-split figures to measure on")
    parser.add_argument("--every", type=int, default=25, help="steps between measurements")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    prog = f"{parser.prog}: error:"
    if min(args.steps, args.batch, args.held_out, args.every, args.depth, args.width, args.threads) < 1:
        raise SystemExit(f"{prog} --steps, --batch, --held-out, --every, --depth, --width and --threads must be at "
                         "least 1")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise SystemExit(f"{prog} --lr must be a finite number above 0, got {args.lr}")
    if args.image_size < 28 or args.window < 28 or args.image_size % 28 or args.window % 28:
        raise SystemExit(f"{prog} --image-size and --window must be positive multiples of 28, got "
                         f"{args.image_size} and {args.window}")
    try:  # the tower's shape, checked as the alignment checks it
        AlignConfig(depth=args.depth, width=args.width, window=args.window, image_size=args.image_size).validate()
    except ValueError as exc:
        raise SystemExit(f"{prog} {exc}") from None
    torch.set_num_threads(args.threads)
    probe(args.family, steps=args.steps, batch=args.batch, lr=args.lr, depth=args.depth, width=args.width,
          window=args.window, image_size=args.image_size, held_out=args.held_out, every=args.every,
          log=lambda line: print(line, file=sys.stderr, flush=True))
    return 0


if __name__ == "__main__":
    run_main(main)  # a bad setting: one line on stderr, exit status 2
