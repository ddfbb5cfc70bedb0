"""Training throughput with 0, 1 and 2 Ray env runners on the embedded model and a real env, and Ray's overhead.

Each setting trains FRE's default config (``configs/fre.yaml``: TextMath, 4 prompts × 8 samples, the embedded VLM)
for ``--steps`` steps from the same seed, with a one-prompt evaluation before and after (a stage is always
evaluated), and reads the run's own metrics:

- ``samples/s``: episodes played and trained on per second of step time (rollout + update + weight sync).
- ``ray overhead/step``: rollout wall time beyond the slowest runner's own playing time, plus the weight
  transfer to the runners (one object in the object store, fetched once by each runner).
- ``start``: cluster, actors and model loading before the first step.

Threads: in-process uses ``--threads`` for everything; a lone runner and the learner get ``--threads`` CPUs
each (they take turns: rollout, then update); two runners get ``--threads / 2`` each. Ratios are against
the in-process path measured in the same run.

Sampling seeds are a pure function of (run seed, step, prompt, sample), so every setting plays the same episodes:
the script exits 1 when a step's rewards differ from the first setting's (a speed-up from other episodes).

Usage: ``python bench/bench_ray.py [--steps 3] [--threads 2] [--runners 0 1 2]``. Prints the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from machine import describe  # bench/machine.py, beside this script

from lmmr1_agent.learner.config import load_yaml, resolve
from lmmr1_agent.train import default_config, run_stage


def measure(runners: int, steps: int, threads: int, folder: Path) -> dict[str, float]:
    """Train ``steps`` FRE steps with ``runners`` env runners; throughput and overhead from the run's metrics."""
    overrides = {"num_steps": steps, "eval_prompts": 1, "save_every": 10**6, "output_dir": str(folder),
                 "num_env_runners": runners, "threads": threads}
    if runners:
        per_runner = max(1, threads // runners)
        overrides.update({"runner_num_cpus": float(per_runner), "learner_num_cpus": float(threads)})
    config = resolve({**load_yaml(default_config("fre")), "stage": "fre"}, overrides)
    tick = time.monotonic()
    run_stage(config, progress=False)
    total = time.monotonic() - tick
    rows = [json.loads(line) for line in (folder / "fre" / "metrics.jsonl").read_text().splitlines()]
    step_seconds = sum(r["perf/step_seconds"] for r in rows)
    overhead = [r.get("perf/ray_overhead_seconds", 0.0) + (r["perf/sync_seconds"] if runners else 0.0) for r in rows]
    return {"samples_per_second": sum(r["rollout/episodes"] for r in rows) / step_seconds,
            "step_seconds": step_seconds / len(rows), "overhead_seconds": sum(overhead) / len(rows),
            "rollout_seconds": sum(r["perf/rollout_seconds"] for r in rows) / len(rows),
            "update_seconds": sum(r.get("perf/update_seconds", 0.0) for r in rows) / len(rows),
            "start_seconds": total - step_seconds, "rewards": [r["rollout/reward"] for r in rows]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="training steps per setting (default: 3)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per phase (default: 2)")
    parser.add_argument("--runners", type=int, nargs="+", default=[0, 1, 2], help="settings (default: 0 1 2)")
    args = parser.parse_args()
    print(f"machine: {describe()}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        for runners in args.runners:
            results[runners] = measure(runners, args.steps, args.threads, Path(tmp) / f"r{runners}")
    base = results.get(0)
    print(f"{'runners':>7}  {'samples/s':>9}  {'vs 0':>5}  {'step s':>6}  {'rollout s':>9}  {'update s':>8}  "
          f"{'ray overhead/step s':>19}  {'start s':>7}")
    for runners, r in results.items():
        ratio = f"{r['samples_per_second'] / base['samples_per_second']:.2f}x" if base else "-"
        print(f"{runners:>7}  {r['samples_per_second']:>9.2f}  {ratio:>5}  {r['step_seconds']:>6.1f}  "
              f"{r['rollout_seconds']:>9.1f}  {r['update_seconds']:>8.1f}  {r['overhead_seconds']:>19.2f}  "
              f"{r['start_seconds']:>7.1f}")
    first = next(iter(results.values()))["rewards"]
    differ = False
    for runners, r in results.items():
        if max(abs(a - b) for a, b in zip(r["rewards"], first)) > 1e-6:
            print(f"DISAGREE: {runners} runners' step rewards {r['rewards']} are not the first setting's {first}")
            differ = True
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
