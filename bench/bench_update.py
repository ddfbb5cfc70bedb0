"""The learner's update with a group's shared prompt run once, against every row run in full, on the same samples.

One rollout of MGT's default config (``configs/mgt.yaml``: VisualMath, 16 figures × 4 samples, the embedded VLM)
is collected once and every advantage set nonzero (so every group trains, the slowest case); then
``Learner.update`` runs on it ``--repeats`` times with ``share_prefix`` on and off, alternating, from the same
weights and optimizer state. Prints the machine, the seconds per update of each and their ratio, and the largest
difference between the two runs' log-probs of the taken tokens (the same computation, summed in another order),
and exits 1 when the two disagree on a result: a log-prob by more than 1e-4, or the update's policy loss or gradient
norm by more than 1e-4 relative (absolute where the value is below 1).

Usage: ``python bench/bench_update.py [--repeats 2] [--threads 2] [--env mgt|fre]``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import sys
import time

import torch
from machine import describe  # bench/machine.py, beside this script

from lmmr1_agent.agents.hf import HFAgent
from lmmr1_agent.learner.config import load_yaml, resolve
from lmmr1_agent.learner.runner import EnvRunner
from lmmr1_agent.learner.samples import episodes_to_samples
from lmmr1_agent.learner.trainer import Learner
from lmmr1_agent.train import default_config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="updates per setting (default: 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument("--env", choices=["mgt", "fre"], default="mgt", help="whose default config (default: mgt)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {describe()}; torch threads {args.threads}")
    config = resolve({**load_yaml(default_config(args.env)), "stage": args.env}, {"output_dir": "/tmp/unused"})
    agent = HFAgent(config.model, temperature=config.temperature, max_new_tokens=config.generate_max_len)
    samples = episodes_to_samples(*EnvRunner(config, agent).collect(0))
    # rewards 0, 1, 0, 1, ... inside every group: every group has an advantage and trains
    samples = [dataclasses.replace(s, reward=float(i % 2)) for i, s in enumerate(samples)]
    prompt = statistics.mean(len(s.prompt_ids) for s in samples)
    response = statistics.mean(len(s.response_ids) for s in samples)
    print(f"{args.env}: {len(samples)} samples, prompts {prompt:.0f} tokens, responses {response:.1f} tokens")
    start = copy.deepcopy(agent.model.state_dict())
    seconds: dict[bool, list[float]] = {True: [], False: []}
    logprobs, results = {}, {}
    for _ in range(args.repeats):
        for share in (True, False):
            agent.model.load_state_dict(start)
            learner = Learner(config, agent.policy)
            learner.policy.share_prefix = share
            batch = learner.policy.sequences(samples[: config.micro_train_batch_size])
            with torch.no_grad():
                logprobs[share] = learner.policy.logprobs(batch)[0]
            if share:
                prefix = learner.policy._shared_prefix(agent.model, batch)
            tick = time.monotonic()
            metrics = learner.update(samples)
            seconds[share].append(time.monotonic() - tick)
            results[share] = {k: metrics[k] for k in ("losses/policy", "losses/grad_norm")}
    shared, full = (statistics.median(seconds[k]) for k in (True, False))
    print(f"update, shared prompt: {shared:.1f} s   every row in full: {full:.1f} s   ratio {full / shared:.2f}x")
    print(f"first micro-batch: {prefix} of {batch['input_ids'].shape[1]} positions run once")
    worst = float((logprobs[True] - logprobs[False]).abs().max())
    print(f"largest log-prob difference: {worst:.2e}; update results, shared / full: "
          + ", ".join(f"{k} {results[True][k]:.6g} / {results[False][k]:.6g}" for k in results[True]))
    problems = [f"log-probs differ by {worst:.2e}"] if worst > 1e-4 else []
    problems += [f"{k}: {results[True][k]:.6g} vs {results[False][k]:.6g}" for k in results[True]
                 if abs(results[True][k] - results[False][k]) > 1e-4 * max(1.0, abs(results[False][k]))]
    if problems:
        print("DISAGREEMENTS:", *problems, sep="\n  ", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
