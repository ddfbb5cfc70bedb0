"""Peak memory of one training step of each default stage: a 32-sample FRE step and an 8-sample MGT step.

    python bench/bench_memory.py [--stages fre mgt]

Each runs ``python -m lmmr1_agent.train`` as a user would (the embedded VLM, the stage's default config) for one
step, in its own process, with the smallest evaluation (``--eval-prompts 1``); MGT starts from the base model
(``--from-base``) with one prompt of 8 samples (``--rollout-batch-size 1 --n-samples-per-prompt 8
--train-batch-size 8``). Printed: the process's peak RSS (``wait4``), the step's seconds from its metrics, and
the machine. No peer runs here: TRL's peak on the same FRE step with the text model is in
``bench/bench_trl.py``'s table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from machine import describe, run_measured  # bench/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
STAGES = {
    "fre": ["--stage", "fre"],
    "mgt": ["--stage", "mgt", "--from-base", "--rollout-batch-size", "1", "--n-samples-per-prompt", "8",
            "--train-batch-size", "8"],
}


def measure(stage: str, workdir: Path) -> tuple[float, dict]:
    """Peak RSS in GB of one training step of ``stage`` and that step's metrics."""
    out = workdir / stage
    code, _, peak = run_measured([sys.executable, "-m", "lmmr1_agent.train", *STAGES[stage], "--num-steps", "1",
                                  "--eval-prompts", "1", "--output-dir", str(out)], cwd=ROOT)
    if code:
        raise SystemExit(f"{stage}: training exited with {code}")
    return peak, json.loads((out / stage / "metrics.jsonl").read_text().splitlines()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", nargs="+", choices=list(STAGES), default=list(STAGES))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for stage in args.stages:
            rows.append((stage, *measure(stage, Path(tmp))))
    print(f"machine: {describe()}")
    print(f"{'stage':6} {'samples':>8} {'peak RSS GB':>12} {'step s':>8} {'rollout s':>10}")
    for stage, peak, metrics in rows:
        samples = 32 if stage == "fre" else 8
        print(f"{stage:6} {samples:8d} {peak:12.2f} {metrics['perf/step_seconds']:8.1f} "
              f"{metrics['perf/rollout_seconds']:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
