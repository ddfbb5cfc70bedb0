"""One training step timed by phase: rollout, experience (reference log-probs, values), update, weight sync.

Runs ``--steps`` steps of a stage with the training command's own options (any ``python -m lmmr1_agent.train``
option: ``--model``, ``--zero-stage``, ``--num-env-runners``, ``--device`` ...) and prints, per step and as the median
over the steps after the first (the first pays for warm-up), the seconds of each phase and samples per second. For
scale it prints LMM-R1's published figure (30.1 min for a 1 024 prompts x 16 samples step of Qwen2.5-VL-3B on
8 x A100, vLLM generating, DeepSpeed ZeRO-3 training): not a peer run here, a reference for a GPU run.

Usage: ``python bench/bench_step.py [--stage fre|mgt] [--steps 3] [train options]``, e.g.
``python bench/bench_step.py --stage fre --zero-stage 2 --steps 3``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from machine import describe  # bench/machine.py, beside this script

from lmmr1_agent.learner.config import FIELDS, add_arguments, load_yaml, resolve
from lmmr1_agent.learner.samples import episodes_to_samples
from lmmr1_agent.models.embedded import resolve_model
from lmmr1_agent.train import default_config, make_workers

#: LMM-R1's reported cost of one step of 1 024 prompts x 16 samples of Qwen2.5-VL-3B on 8 x A100 (docs/algorithms.md).
PAPER = {"seconds": 30.1 * 60, "samples": 1024 * 16, "hardware": "8 x A100 80 GB"}
PHASES = ("rollout", "experience", "update", "sync")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", choices=["fre", "mgt"], default="fre", help="whose config (default: fre)")
    parser.add_argument("--config", type=Path, help="YAML config (default: the shipped configs/<stage>.yaml)")
    parser.add_argument("--steps", type=int, default=3, help="training steps to time (default: 3)")
    add_arguments(parser)
    args = parser.parse_args()
    overrides = {k: v for k, v in vars(args).items() if k in FIELDS and k != "stage"}
    with tempfile.TemporaryDirectory() as out:
        overrides["output_dir"] = out
        config = resolve({**load_yaml(args.config or default_config(args.stage)), "stage": args.stage}, overrides)
        config = dataclasses.replace(config, num_steps=args.steps)
        if config.threads:
            torch.set_num_threads(config.threads)
        # MGT starts from the base VLM here (the bench times a step; it does not need FRE's result)
        model = resolve_model(config.model)
        print(f"machine: {describe()}; torch threads {torch.get_num_threads()}; cuda: "
              f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
        learner = f"DeepSpeed ZeRO-{config.zero_stage}" if config.zero_stage >= 0 else "torch"
        print(f"{config.stage}: model {config.model}, {config.rollout_batch_size} prompts x "
              f"{config.n_samples_per_prompt} samples, {config.generate_max_len} new tokens, learner {learner} x "
              f"{config.learner_num_workers}, "
              f"env runners {config.num_env_runners or 'in-process'}, device {config.device}, dtype {config.dtype}")
        workers = make_workers(config, model)
        rows = []
        try:
            for step in range(args.steps):
                tick = time.monotonic()
                episodes, groups = workers.collect(step)
                samples = episodes_to_samples(episodes, groups)
                rollout = time.monotonic() - tick
                metrics = workers.update(samples)
                total = time.monotonic() - tick
                experience = metrics.get("perf/experience_seconds", 0.0)
                row = {"rollout": rollout, "experience": experience,
                       "update": metrics.get("perf/update_seconds", 0.0) - experience,
                       "sync": metrics.get("perf/sync_seconds", 0.0), "total": total, "samples": len(samples)}
                rows.append(row)
                print(f"step {step + 1}: " + "  ".join(f"{k} {row[k]:.2f} s" for k in (*PHASES, "total"))
                      + f"  ({len(samples)} samples)", flush=True)
        finally:
            workers.close()
    steady = rows[1:] or rows
    median = {k: statistics.median(r[k] for r in steady) for k in (*PHASES, "total", "samples")}
    print("\n| phase | seconds (median of steps 2..) | share |\n|---|---|---|")
    for k in PHASES:
        print(f"| {k} | {median[k]:.2f} | {median[k] / median['total']:.0%} |")
    print(f"| step | {median['total']:.2f} | {median['samples'] / median['total']:.2f} samples/s |")
    print(f"\nLMM-R1's reported figure for scale: {PAPER['samples'] / PAPER['seconds']:.2f} samples/s "
          f"({PAPER['samples']} samples in {PAPER['seconds'] / 60:.1f} min on {PAPER['hardware']}, Qwen2.5-VL-3B)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
