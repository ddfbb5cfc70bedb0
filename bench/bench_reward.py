"""The math reward side by side with LMM-R1's verifier, on the same responses, with every verdict compared.

The peer is TideDra/lmm-r1's reward server (``openrlhf/models/remote_rm/math_verifier.py``) without its Flask
layer: EOS markers stripped, its format regex in-process, ``verify_math`` (math-verify with LMM-R1's extraction
settings and math-verify's own 5 s ``signal`` timeouts) submitted per response to a ``ProcessPoolExecutor`` of 16
workers, as the server does. Ours is :func:`lmmr1_env.rewards.score_math_batch` (what the learner calls through
:func:`lmmr1_agent.rollout.step_all`) in both reward modes, and :func:`~lmmr1_env.rewards.score_math` for one call.

The corpus: ``--prompts`` problems per batch (half TextMath over every family and difficulty, half VisualMath),
``--samples`` responses each as a GRPO group would write them: right in several forms (``12``, ``$12$``,
``\\boxed{12}``, ``\\frac{12}{1}``, ``12.0``, and ``--expressions`` of all responses (default 10 %)
as ``1 \\cdot 12``, ``x = 12``, ``12 \\text{ units}``, which only math-verify can judge), wrong (near
misses, another problem's answer), malformed (no tags, unclosed, empty, text after the answer), long (a
4 000-character ``<think>``), and ``--hostile`` power towers per batch. Each repeat draws new problems, so
no cache carries over from one batch to the next.

Checks, any failure exits 1: our "lmmr1" rewards equal the peer's on every response; in each mode the batch's
verdicts equal each response judged alone by the plain function (:func:`lmmr1_env.math_judge.judge_lmmr1`, and
for "answer" mode :func:`~lmmr1_env.math_judge.judge_answer` with math-verify deciding whole numbers, so the
fast path is checked against it); hostile responses score 0 on both sides.

Usage: ``python bench/bench_reward.py [--prompts 128] [--samples 8] [--repeats 3] [--hostile 2] [--expressions 0.1]``.
"""

from __future__ import annotations

import argparse
import gc
import random
import re
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import gymnasium as gym
from machine import describe  # bench/machine.py, beside this script

import lmmr1_env  # noqa: F401  (registers the ids)
from lmmr1_env.math_judge import judge_lmmr1, verify_answer
from lmmr1_env.math_quick import quick_answer_verdict
from lmmr1_env.rewards import _VERIFIER, extract_answer, score_math, score_math_batch, strip_eos

PEER_WORKERS = 16  # math_verifier.py: futures.ProcessPoolExecutor(max_workers=16)
PEER_FORMAT = r"^<think>(?:(?!</think>).)*</think><answer>(?:(?!</answer>).)*</answer>\Z"
PEER_EOS = ["<|im_end|>", "<\uff5cend\u2581of\u2581sentence\uff5c>", "<|endoftext|>", "<end_of_turn>"]
TOWER = "9^{{9^{{9^{{{}}}}}}}"


# ---- the peer: LMM-R1's reward server, its logic as written, in this process and its pool ----

def peer_verify_math(content: str, sol: str) -> float:
    """LMM-R1's ``verify_math``: math-verify's defaults (5 s signal timeouts), its extraction settings."""
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import LatexExtractionConfig, parse, verify

    gold_parsed = parse(sol, extraction_mode="first_match", extraction_config=[LatexExtractionConfig()])
    if len(gold_parsed) == 0:
        return 1.0
    answer_parsed = parse(content, extraction_config=[LatexExtractionConfig(
        normalization_config=NormalizationConfig(nits=False, malformed_operators=False, basic_latex=True,
                                                 boxed="all", units=True),
        boxed_match_priority=0, try_extract_without_anchor=False)], extraction_mode="first_match")
    try:
        return float(verify(answer_parsed, gold_parsed))
    except Exception:  # noqa: BLE001 - the peer scores any verify failure 0
        return 0.0


def peer_prepare(response: str, gold: str) -> tuple[str, str, float]:
    """The server's per-response work before ``verify_math``: strip EOS, ``$``-wrap the gold, format reward."""
    for eos in PEER_EOS:
        response = response.replace(eos, "")
    response = response.strip()
    answer = gold if gold.startswith("$") else "$" + gold + "$"
    ok = bool(re.match(PEER_FORMAT, response, re.DOTALL)) and response.count("<think>") == 1 \
        and response.count("<answer>") == 1
    return response, answer, 0.5 * float(ok)


def peer_batch(pool: ProcessPoolExecutor, responses: list[str], golds: list[str]) -> list[float]:
    prepared = [peer_prepare(r, g) for r, g in zip(responses, golds)]
    futures = [pool.submit(peer_verify_math, response, answer) for response, answer, _ in prepared]
    return [fmt + f.result() for (_, _, fmt), f in zip(prepared, futures)]


def peer_one(response: str, gold: str) -> float:
    response, answer, fmt = peer_prepare(response, gold)
    return fmt + peer_verify_math(response, answer)


# ---- the corpus ----

def golds(prompts: int, repeat: int) -> list[str]:
    text = gym.make("LMMR1/TextMath-v0", difficulty=[1, 2, 3]).unwrapped
    visual = gym.make("LMMR1/VisualMath-v0").unwrapped
    base = 100_000 * (repeat + 1)
    return [(text if i % 2 else visual).task_for_seed(base + i)["answer"] for i in range(prompts)]


def responses_for(gold: str, others: list[str], samples: int, rng: random.Random, expressions: float) -> list[str]:
    def think(k: int) -> str:
        return f"Reading the problem, step {k}: the result follows."

    out = []
    for k in range(samples):
        kind = rng.random()
        number = gold.lstrip("-").isdigit()
        if kind < 0.45 - expressions:  # right
            form = rng.choice(["{}", "${}$", "\\boxed{{{}}}", "$\\boxed{{{}}}$"]
                              + (["\\frac{{{}}}{{1}}", "{}.0"] if number else []))
            value = form.format(gold)
        elif kind < 0.45:  # right, as an expression or with words: math-verify's to judge
            value = rng.choice(["{} + 0", "1 \\cdot {}", "x = {}", "{} \\text{{ units}}"]).format(gold)
        elif kind < 0.70:  # wrong: a near miss or another problem's answer
            value = str(int(gold) + rng.choice([-2, -1, 1, 10])) if number else rng.choice(others)
            value = rng.choice(["{}", "${}$"]).format(value)
        elif kind < 0.85:  # malformed
            value = None
            out.append(rng.choice([f"{think(k)} so the answer is {gold}", f"<think>{think(k)}<answer>{gold}",
                                   f"<think>{think(k)}</think><answer></answer>",
                                   f"<think>{think(k)}</think><answer>{gold}</answer> Hope that helps!"]))
        else:  # long reasoning
            value = rng.choice(["{}", "${}$"]).format(gold if rng.random() < 0.5 else rng.choice(others))
            out.append(f"<think>{think(k) * 80}</think><answer>{value}</answer><|im_end|>")
            continue
        if value is not None:
            out.append(f"<think>{think(k)}</think><answer>{value}</answer>")
    return out


def corpus(prompts: int, samples: int, hostile: int, repeat: int,
           expressions: float = 0.10) -> tuple[list[str], list[str], set[int]]:
    rng = random.Random(repeat)
    answers = golds(prompts, repeat)
    responses, gold_of = [], []
    for gold in answers:
        responses += responses_for(gold, answers, samples, rng, expressions)
        gold_of += [gold] * samples
    hostile_at = set(rng.sample(range(len(responses)), hostile))
    for n, i in enumerate(sorted(hostile_at)):
        responses[i] = f"<think>big</think><answer>${TOWER.format(9 - n % 9)}$</answer>"
    return responses, gold_of, hostile_at


# ---- the checks ----

def reference(mode: str, response: str, gold: str) -> float:
    """The reward each response gets judged alone by the plain functions (no batch, no whole-number path)."""
    from lmmr1_env.rewards import FORMAT_WEIGHT, format_ok

    text = strip_eos(response)
    fmt = FORMAT_WEIGHT * float(format_ok(text))
    if mode == "lmmr1":
        return fmt + judge_lmmr1(gold, text)["accuracy"]
    prediction = extract_answer(text)
    if not prediction:
        return fmt
    quick = quick_answer_verdict(gold, prediction)
    numeric = quick is not None and quick["how"] in ("integer", "number")
    verdict = quick if quick is not None and not numeric else verify_answer(gold, prediction)
    return fmt + verdict["accuracy"]


def disagreements(name: str, ours: list[float], theirs: list[float], responses: list[str]) -> list[str]:
    return [f"{name}: response {i} ({responses[i][:80]!r}): {a} vs {b}"
            for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=128, help="problems per batch (default: 128)")
    parser.add_argument("--samples", type=int, default=8, help="responses per problem (default: 8)")
    parser.add_argument("--repeats", type=int, default=3, help="batches, each of new problems (default: 3)")
    parser.add_argument("--hostile", type=int, default=2, help="power towers per batch (default: 2)")
    parser.add_argument("--expressions", type=float, default=0.10,
                        help="share of responses that are right answers written as expressions (default: 0.10)")
    parser.add_argument("--peer-workers", type=int, default=PEER_WORKERS,
                        help=f"processes in LMM-R1's pool (default: {PEER_WORKERS}, as its server)")
    parser.add_argument("--single", type=int, default=200, help="responses timed one call at a time (default: 200)")
    args = parser.parse_args()
    print(f"machine: {describe()}")
    problems: list[str] = []
    pool = ProcessPoolExecutor(max_workers=args.peer_workers)
    _VERIFIER.warm()
    # Both sides warm, untimed: every worker started and through sympy's first-use set-up.
    warm_responses, warm_golds, _ = corpus(args.prompts, args.samples, 0, 1000, args.expressions)
    peer_batch(pool, warm_responses, warm_golds)
    for mode in ("answer", "lmmr1"):
        score_math_batch(warm_responses, warm_golds, mode=mode)
    times: dict[str, list[float]] = {"peer": [], "answer": [], "lmmr1": []}
    clean_times: dict[str, list[float]] = {"peer": [], "answer": [], "lmmr1": []}
    n = args.prompts * args.samples
    for repeat in range(args.repeats):
        for hostile in ([0, args.hostile] if args.hostile else [0]):
            responses, gold_of, hostile_at = corpus(args.prompts, args.samples, hostile, repeat + 10 * hostile,
                                                     args.expressions)
            sink = clean_times if hostile == 0 else times
            gc.collect()
            start = time.perf_counter()
            theirs = peer_batch(pool, responses, gold_of)
            sink["peer"].append(time.perf_counter() - start)
            ours = {}
            for mode in ("answer", "lmmr1"):
                gc.collect()
                start = time.perf_counter()
                scores = score_math_batch(responses, gold_of, mode=mode)
                sink[mode].append(time.perf_counter() - start)
                ours[mode] = [s.reward for s in scores]
                for i in hostile_at:
                    if scores[i].terms["accuracy"] != 0.0 or not scores[i].timed_out:
                        problems.append(f"{mode}: hostile response {i} was not a timeout scoring 0")
            problems += disagreements("lmmr1 vs LMM-R1", ours["lmmr1"], theirs, responses)
            if hostile == 0:  # the plain functions have no time bound: only the clean batches are re-judged
                for mode in ("answer", "lmmr1"):
                    problems += disagreements(f"{mode} batch vs alone", ours[mode],
                                              [reference(mode, r, g) for r, g in zip(responses, gold_of)],
                                              responses)
    pool.shutdown()

    responses, gold_of, _ = corpus(args.prompts, args.samples, 0, 99, args.expressions)
    picks = random.Random(0).sample(range(len(responses)), min(args.single, len(responses)))
    single: dict[str, list[float]] = {"peer": [], "answer": [], "lmmr1": []}
    for i in picks:
        for name in single:
            start = time.perf_counter()
            if name == "peer":
                peer_one(responses[i], gold_of[i])
            else:
                score_math(responses[i], gold_of[i], mode=name)
            single[name].append(time.perf_counter() - start)

    print(f"corpus: {args.prompts} problems x {args.samples} responses = {n} per batch, {args.repeats} batches of "
          f"new problems each; peer: LMM-R1's server logic, {args.peer_workers} worker processes; ours: "
          f"score_math_batch, the pool's default workers")
    print(f"{'':34} {'responses/s':>12} {'batch p50 s':>12} {'batch p99 s':>12} {'vs LMM-R1':>10}")
    for label, sink in ((f"batch of {n}", clean_times), (f"batch of {n}, {args.hostile} hostile", times)):
        if not sink["peer"]:
            continue
        peer_rate = n / statistics.median(sink["peer"])
        for name in ("peer", "answer", "lmmr1"):
            rate = n / statistics.median(sink[name])
            who = "LMM-R1 verifier" if name == "peer" else f"ours, {name} mode"
            print(f"{label + ': ' + who:34} {rate:12.0f} {statistics.median(sink[name]):12.3f} "
                  f"{percentile(sink[name], 0.99):12.3f} {rate / peer_rate:9.2f}x")
    print(f"{'one call':34} {'p50 ms':>12} {'p99 ms':>12}")
    for name in ("peer", "answer", "lmmr1"):
        who = "LMM-R1 verifier, in-process" if name == "peer" else f"ours, {name} mode"
        print(f"{'one call: ' + who:34} {1e3 * percentile(single[name], 0.5):12.2f} "
              f"{1e3 * percentile(single[name], 0.99):12.2f}")
    if problems:
        print(f"\n{len(problems)} DISAGREEMENTS:", *problems[:20], sep="\n  ")
        return 1
    print("verdicts: identical (lmmr1 mode = LMM-R1 on every response; each mode's batch = each response alone)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
