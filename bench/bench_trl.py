"""A GRPO training step side by side with TRL's GRPOTrainer: same model, prompts, reward, batch and lengths.

    python bench/bench_trl.py [--steps 4] [--trl-python /tmp/trl-venv/bin/python]

Both sides train SmolLM2-135M-Instruct (the embedded text model, fp32, 2 torch threads) on FRE's default task
(TextMath arithmetic, difficulty 2), 4 prompts × 8 samples a step, 48 new tokens, temperature 1, micro-batch 8,
lr 1e-5 constant, β = 0, for ``--steps`` steps on the same prompts in the same order (the prompts our learner
draws for those steps, with the env's system prompt and demonstration), each rewarded by the env's reward
(:func:`lmmr1_env.rewards.score_math`, 0.5 format + 1.0 accuracy). Ours is ``python -m lmmr1_agent.train
--stage fre --model smollm2``; TRL's is ``GRPOTrainer`` (``loss_type="dapo"``, its default, the token-level
mean; gradient checkpointing off as ours, ``--trl-checkpointing`` for TRL's default) in its own virtual
environment, which sees this checkout's packages through a ``.pth`` file::

    python3 -m venv /tmp/trl-venv && /tmp/trl-venv/bin/pip install trl==1.16.0
    PTH=/tmp/trl-venv/lib/python3.11/site-packages/lmmr1.pth
    .venv/bin/python -c "import site; print(site.getsitepackages()[0])" > $PTH; pwd >> $PTH

Each side runs in its own process; its peak RSS comes from ``wait4``. Printed: seconds a step (rollout =
generation + reward, update = the rest), samples/s over the steps after the first, peak memory, and the ratios.
Exits 1 when the two sides did not train on the same prompts, or when TRL's logged rewards differ from the env's
reward of its completions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from machine import describe, run_measured  # bench/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
PROMPTS, SAMPLES, NEW_TOKENS, MICRO, LR = 4, 8, 48, 8, 1e-5
ENV_KWARGS = {"families": ["arithmetic"], "difficulty": 2}


def training_prompts(steps: int) -> list[dict]:
    """The prompts our learner plays at steps 0..steps-1 (its seeds), as chat messages with their gold answer."""
    import gymnasium as gym

    import lmmr1_env  # noqa: F401
    from lmmr1_agent.learner.runner import SEED_STRIDE

    env = gym.make("LMMR1/TextMath-v0", **ENV_KWARGS)
    rows = []
    for step in range(steps):
        for i in range(PROMPTS):
            obs, info = env.reset(seed=0 * SEED_STRIDE + step * PROMPTS + i)
            demo = env.get_wrapper_attr("demonstration")
            messages = [{"role": "system", "content": info["system_prompt"]},
                        *({"role": m["role"], "content": m["content"]} for m in demo),
                        {"role": "user", "content": obs["text"]}]
            rows.append({"prompt": messages, "answer": info["answer"]})
    return rows


def fingerprint(messages: list[dict]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]


# ---- our side: the CLI a user runs ----

def ours(steps: int, workdir: Path) -> dict:
    out = workdir / "ours"
    code, wall, peak = run_measured([sys.executable, "-m", "lmmr1_agent.train", "--stage", "fre", "--model",
                                     "smollm2", "--num-steps", str(steps), "--eval-prompts", "1", "--threads", "2",
                                     "--save-every", str(steps), "--output-dir", str(out)], cwd=ROOT)
    if code:
        raise SystemExit(f"our training exited with {code}")
    rows = [json.loads(line) for line in (out / "fre" / "metrics.jsonl").read_text().splitlines()]
    return {"step": [r["perf/step_seconds"] for r in rows], "rollout": [r["perf/rollout_seconds"] for r in rows],
            "reward": [r["rollout/reward"] for r in rows], "wall": wall, "peak_gb": peak}


# ---- TRL's side: runs in the TRL venv (``--side trl``) ----

def trl_side(args: argparse.Namespace) -> None:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from lmmr1_env.rewards import score_math

    torch.set_num_threads(2)
    rows = json.loads(Path(args.prompts_file).read_text())
    log: dict = {"step": [], "rollout": [], "prompts": [], "scored": []}

    def reward(prompts, completions, answer, **_):
        texts = [c[0]["content"] for c in completions]
        rewards = [score_math(t, a).reward for t, a in zip(texts, answer)]
        log["prompts"] += [fingerprint(p) for p in prompts]
        log["scored"] += [[t, a, r] for t, a, r in zip(texts, answer, rewards)]
        return rewards

    config = GRPOConfig(
        output_dir=args.out, per_device_train_batch_size=MICRO,
        gradient_accumulation_steps=PROMPTS * SAMPLES // MICRO,
        num_generations=SAMPLES, max_completion_length=NEW_TOKENS, temperature=1.0, top_p=1.0, learning_rate=LR,
        lr_scheduler_type="constant", adam_beta2=0.95, beta=0.0, max_steps=args.steps, logging_steps=1,
        report_to=[], use_cpu=True, bf16=False, shuffle_dataset=False, save_strategy="no", seed=0,
        dataloader_num_workers=0, model_init_kwargs={"dtype": torch.float32},
        gradient_checkpointing=args.trl_checkpointing)
    trainer = GRPOTrainer(model=args.model_dir, reward_funcs=reward, args=config,
                          train_dataset=Dataset.from_list(rows))
    generate = trainer._generate_and_score_completions

    def timed_generate(*a, **k):
        start = time.perf_counter()
        result = generate(*a, **k)
        log["rollout"][-1] += time.perf_counter() - start
        return result

    trainer._generate_and_score_completions = timed_generate

    class Steps(TrainerCallback):
        def on_step_begin(self, *_, **__):
            log["rollout"].append(0.0)
            self.start = time.perf_counter()

        def on_step_end(self, *_, **__):
            log["step"].append(time.perf_counter() - self.start)

    trainer.add_callback(Steps())
    trainer.train()
    Path(args.out, "log.json").write_text(json.dumps(log))


def theirs(args: argparse.Namespace, workdir: Path, rows: list[dict]) -> dict:
    from lmmr1_agent.models.embedded import resolve_model

    prompts_file = workdir / "prompts.json"
    prompts_file.write_text(json.dumps(rows))
    out = workdir / "trl"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    command = [args.trl_python, __file__, "--side", "trl", "--steps", str(args.steps), "--prompts-file",
               str(prompts_file), "--model-dir", resolve_model("smollm2"), "--out", str(out)]
    code, wall, peak = run_measured(command + (["--trl-checkpointing"] if args.trl_checkpointing else []),
                                    cwd=ROOT, env=env)
    if code:
        raise SystemExit(f"TRL's training exited with {code}")
    return {**json.loads((out / "log.json").read_text()), "wall": wall, "peak_gb": peak}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="training steps on each side (default: 4)")
    parser.add_argument("--trl-python", default="/tmp/trl-venv/bin/python", help="the TRL venv's python")
    parser.add_argument("--trl-checkpointing", action="store_true",
                        help="keep TRL's default gradient checkpointing (ours has none; off by default)")
    parser.add_argument("--side", choices=["both", "trl"], default="both", help=argparse.SUPPRESS)
    parser.add_argument("--prompts-file", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "trl":
        trl_side(args)
        return 0
    from lmmr1_env.rewards import score_math

    print(f"machine: {describe()}")
    rows = training_prompts(args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        mine = ours(args.steps, Path(tmp))
        trl = theirs(args, Path(tmp), rows)
    problems = []
    expected = [fingerprint(r["prompt"]) for r in rows for _ in range(SAMPLES)]
    if sorted(trl["prompts"]) != sorted(expected) or len(trl["prompts"]) != len(expected):
        problems.append("TRL did not train on the prompts ours did")
    rescored = sum(score_math(t, a).reward != r for t, a, r in trl["scored"])
    if rescored:
        problems.append(f"{rescored} of TRL's logged rewards differ from the env's reward of its completions")

    def steady(values: list[float]) -> list[float]:
        return values[1:] if len(values) > 1 else values

    print(f"{args.steps} steps of {PROMPTS} prompts x {SAMPLES} samples, {NEW_TOKENS} new tokens, micro-batch "
          f"{MICRO}; figures over steps 2..{args.steps} (the first includes warm-up)")
    print(f"{'':22} {'lmmr1':>10} {'TRL':>10} {'ratio':>8}")
    table = {}
    for name, a, b in (("step s", mine["step"], trl["step"]), ("rollout s", mine["rollout"], trl["rollout"]),
                       ("update s", [s - r for s, r in zip(mine["step"], mine["rollout"])],
                        [s - r for s, r in zip(trl["step"], trl["rollout"])])):
        table[name] = (statistics.mean(steady(a)), statistics.mean(steady(b)))
        print(f"{name:22} {table[name][0]:10.1f} {table[name][1]:10.1f} {table[name][1] / table[name][0]:7.2f}x")
    ours_rate, trl_rate = PROMPTS * SAMPLES / table["step s"][0], PROMPTS * SAMPLES / table["step s"][1]
    print(f"{'samples/s':22} {ours_rate:10.2f} {trl_rate:10.2f} {ours_rate / trl_rate:7.2f}x")
    print(f"{'peak RSS GB':22} {mine['peak_gb']:10.2f} {trl['peak_gb']:10.2f} "
          f"{trl['peak_gb'] / mine['peak_gb']:7.2f}x")
    print(f"{'whole command s':22} {mine['wall']:10.0f} {trl['wall']:10.0f}   (ours: with 2 one-prompt evaluations)")
    print(f"mean training reward: lmmr1 {statistics.mean(mine['reward']):.3f}, "
          f"TRL {statistics.mean(r for _, _, r in trl['scored']):.3f}")
    if problems:
        print("DISAGREEMENTS:", *problems, sep="\n  ")
        return 1
    print("same prompts, same reward on both sides")
    return 0


if __name__ == "__main__":
    sys.exit(main())
