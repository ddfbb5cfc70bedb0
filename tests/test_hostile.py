"""Nothing a model writes can stall training, and a run survives its own folder.

The adversarial corpus: megabyte responses built to make a parser backtrack or scan quadratically (repeated
opening or closing tags, nested tags, alternations), fed to every parser of model text and to every registered
env. Then the math-verify pool's guarantees (a budget that includes the restart, parallel judging, no leaked
process, workers that die with their parent), the learner's refusal of non-finite updates, and the run folder's
single writer, damaged checkpoints and leftover temporaries.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import gymnasium as gym
import pytest
import torch

import lmmr1_env
import tests.toy_env  # noqa: F401  (registers Toy/Digits-v0)
from lmmr1_agent.learner.checkpoint import RunFolderBusy, RunLock, latest_checkpoint, save_checkpoint
from lmmr1_agent.learner.config import ConfigError
from lmmr1_env.football.actions import parse_action
from lmmr1_env.math_pool import MathVerifier, VerifierTimeout
from lmmr1_env.rewards import _VERIFIER, extract_answer, format_ok, strip_eos
from lmmr1_env.sokoban.env import parse_move
from lmmr1_env.sokoban.levels import parse_xsb
from lmmr1_env.sokoban.verifier import has_repetition, score_plan
from lmmr1_env.tags import first_tag_body, last_tag_body, tag_bodies
from tests.tiny_models import train_command

ROOT = Path(__file__).resolve().parents[1]
MB = 1 << 20


def _megabyte(unit: str) -> str:
    return (unit * (MB // len(unit) + 1))[:MB]


#: Responses a collapsing policy could write, each one megabyte.
ADVERSARIAL = {
    "opening-answer-tags": _megabyte("<answer>"),
    "closing-answer-tags": _megabyte("</answer>"),
    "opening-think-tags": _megabyte("<think>"),
    "nested-tags": _megabyte("<think><answer>"),
    "alternating-tags": _megabyte("<answer></think><think></answer>"),
    "unclosed-after-a-pair": "<think>a</think><answer>1</answer>" + _megabyte("<answer>1"),
    "one-huge-answer": "<think>x</think><answer>" + _megabyte("Left, Right, Up, ") + "Down</answer>",
    "magebench-lines": _megabyte("# action "),
    "action-prefixes": _megabyte("action_"),
    "hashes-and-spaces": _megabyte("#" + " " * 50),
    "repeated-words": _megabyte("left "),
}
#: Linear parsers read a megabyte in milliseconds; the quadratic ones this replaced took minutes.
PARSE_BOUND_S = 2.0
LEVEL = parse_xsb("#####\n#@$.#\n#####", "a corridor")[0]
PARSERS = {
    "extract_answer": extract_answer,
    "format_ok": lambda text: format_ok(strip_eos(text)),
    "football.parse_action": parse_action,
    "sokoban.parse_move": parse_move,
    "sokoban.score_plan": lambda text: score_plan(text, LEVEL),
    "sokoban.has_repetition": has_repetition,
    "tag_bodies": lambda text: tag_bodies(text, "answer", ignore_case=True),
}


# ---- parsers: linear time on a megabyte, same answers as the regexes they replaced ----

@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("payload", ADVERSARIAL)
def test_every_parser_reads_a_hostile_megabyte_in_bounded_time(parser, payload):
    start = time.monotonic()
    PARSERS[parser](ADVERSARIAL[payload])
    assert time.monotonic() - start < PARSE_BOUND_S


def test_tag_bodies_pair_tags_exactly_as_the_lazy_regex_does():
    rng = random.Random(0)
    pieces = ["<answer>", "</answer>", "<ANSWER>", "</Answer>", "a", "1", "<", ">", "/", "\n", "answer", "é"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert tag_bodies(text, "answer") == re.findall(r"<answer>(.*?)</answer>", text, re.DOTALL)
        ascii_only = text.replace("é", "e")
        assert tag_bodies(ascii_only, "answer", ignore_case=True) == re.findall(
            r"<answer>(.*?)</answer>", ascii_only, re.DOTALL | re.IGNORECASE)
        match = re.search(r"<answer>(.*?)</answer>", text, re.DOTALL)
        assert first_tag_body(text, "answer") == (match.group(1) if match else None)
        bodies = tag_bodies(text, "answer")
        assert last_tag_body(text, "answer") == (bodies[-1] if bodies else None)


# ---- every registered env: a bounded, finite, explained step for any of them ----

#: A math step may spend its whole verify budget (3 s by default) in math-verify; the rest is a CI margin.
STEP_BOUND_S = 15.0


@pytest.mark.parametrize("env_id", lmmr1_env.registered_ids())
def test_every_env_steps_through_the_adversarial_corpus(env_id):
    env = gym.make(env_id)
    try:
        for name, payload in ADVERSARIAL.items():
            env.reset(seed=0)
            start = time.monotonic()
            _, reward, terminated, truncated, info = env.step(payload)
            elapsed = time.monotonic() - start
            assert elapsed < STEP_BOUND_S, (name, elapsed)
            assert math.isfinite(reward), name
            assert math.isclose(sum(info["reward_terms"].values()), reward, abs_tol=1e-9), name
            assert info.get("parse_error") is None or len(info["parse_error"]) < 400, name
    finally:
        env.close()


# ---- the math-verify pool ----

POWER_TOWER = "9^{9^{9^{9}}}"  # math-verify works on it for well over 15 s


def _warm(verifier: MathVerifier) -> None:
    """Start every worker and spare and let them finish importing sympy (so timings measure judging only)."""
    threads = [threading.Thread(target=verifier.judge, args=("answer", "1", "1", 60.0)) for _ in range(verifier.size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert verifier.judge("answer", "2", "2", 60.0)["accuracy"] == 1.0
    time.sleep(3.0)  # the spares import sympy meanwhile


def _children(pid: int) -> dict[int, str]:
    """Live (non-zombie) processes whose parent is ``pid``, with their state letter."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out[int(entry.name)] = fields[0]
    return out


def _math_workers() -> set[int]:
    """This process's live math-verify workers, whichever pool they belong to."""
    found = set()
    for pid in _children(os.getpid()):
        try:
            if "_math_worker" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                found.add(pid)
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_budget_holds_per_response_including_the_restart():
    budget = 1.0
    verifier = MathVerifier(1, spares=2)
    try:
        _warm(verifier)
        for _ in range(3):  # each timeout kills a worker; a warm spare takes its place at once
            start = time.monotonic()
            with pytest.raises(VerifierTimeout):
                verifier.judge("answer", "4", POWER_TOWER, budget)
            # A restart in series (the old single worker) added 0.5-0.7 s to every call after a timeout.
            assert time.monotonic() - start < budget + 0.3
            time.sleep(0.2)
        assert verifier.restarts == 3
        assert verifier.judge("answer", "4", "4", budget)["accuracy"] == 1.0
    finally:
        verifier.close()


def test_a_batch_of_hostile_responses_costs_budget_times_n_over_workers():
    budget, workers, hostile = 1.0, 2, 6
    verifier = MathVerifier(workers, spares=2)
    try:
        _warm(verifier)
        timed_out = []

        def judge():
            try:
                verifier.judge("answer", "4", POWER_TOWER, budget)
            except VerifierTimeout:
                timed_out.append(True)

        start = time.monotonic()
        threads = [threading.Thread(target=judge) for _ in range(hostile)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        assert len(timed_out) == hostile
        # budget × hostile / workers is 3 s; one at a time (the old worker) took over 6 s plus a restart each (about
        # 9 s). The margin covers the restarts of a loaded 2-core machine (5.8 s measured once, fresh clone).
        assert elapsed < budget * hostile / workers + 3.5, elapsed
    finally:
        verifier.close()


def test_a_batch_keeps_each_responses_budget_and_judges_what_queued_behind_a_hostile_one():
    budget, workers = 1.0, 2
    towers = [f"9^{{9^{{9^{{{9 - k}}}}}}}" for k in range(4)]  # distinct: a batch judges each distinct text once
    verifier = MathVerifier(workers, spares=2)
    try:
        _warm(verifier)
        requests = []
        for k in range(40):
            requests.append(("answer", str(k), f"\\frac{{{2 * k}}}{{2}}"))
            if k % 10 == 5:
                requests.append(("answer", "4", towers[k // 10]))
        start = time.monotonic()
        results = verifier.judge_many(requests, budget)
        elapsed = time.monotonic() - start
        for (_, gold, prediction), result in zip(requests, results):
            if prediction in towers:
                assert isinstance(result, VerifierTimeout)
            else:  # the requests queued behind a hostile one on its worker went to the next worker, unharmed
                assert isinstance(result, dict) and result["accuracy"] == 1.0, (gold, result)
        assert verifier.restarts == len(towers)
        assert elapsed < budget * len(towers) / workers + 3.0, elapsed
    finally:
        verifier.close()


def test_warm_starts_every_worker_and_spare_before_the_first_request():
    verifier = MathVerifier(2, spares=1)
    try:
        verifier.warm()
        assert len(verifier.pids()) == 3
        start = time.monotonic()
        assert [r["accuracy"] for r in verifier.judge_many([("answer", "1", "\\frac{2}{2}")] * 2, 30.0)] == [1.0, 1.0]
        assert time.monotonic() - start < 2.0  # no worker imports sympy now (that takes 1-3 s)
        assert verifier.restarts == 0
    finally:
        verifier.close()


def test_a_worker_killed_from_outside_is_replaced_transparently():
    verifier = MathVerifier(1, spares=0)
    try:
        assert verifier.judge("answer", "3", "3", 30.0)["accuracy"] == 1.0
        (victim,) = verifier.pids()
        os.kill(victim, signal.SIGKILL)
        while _alive(victim):
            time.sleep(0.01)
        assert verifier.judge("answer", "3", "3", 30.0)["accuracy"] == 1.0
        assert verifier.restarts == 1 and victim not in verifier.pids()
    finally:
        verifier.close()


def test_thousands_of_calls_leak_no_process_and_no_memory():
    shared = set(_VERIFIER.pids())  # the envs' pool, started by other tests in this process
    verifier = MathVerifier(2, spares=1, max_requests=700)
    try:
        verifier.judge("answer", "1", "1", 30.0)
        for k in range(2000):
            verdict = verifier.judge("answer", str(k % 97), f"\\frac{{{2 * (k % 97)}}}{{2}}" if k % 3 else "x", 30.0)
            assert verdict["accuracy"] == float(k % 3 != 0)
            if k % 500 == 250:
                with pytest.raises(VerifierTimeout):
                    verifier.judge("answer", "4", POWER_TOWER, 0.3)
        workers = _math_workers() - shared
        assert workers == set(verifier.pids()) and len(workers) <= verifier.size + verifier.spare_count
        for pid in workers:
            rss_kb = int(next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                              if line.startswith("VmRSS")).split()[1])
            assert rss_kb < 400_000  # about 85 MB when fresh
    finally:
        verifier.close()
    time.sleep(0.2)
    assert not _math_workers() - shared


def test_workers_die_with_a_sigkilled_parent():
    code = (
        "import sys, threading, time\n"
        "from lmmr1_env.math_pool import MathVerifier\n"
        "v = MathVerifier(1, spares=1)\n"
        "v.judge('answer', '1', '1', 60.0)\n"
        f"threading.Thread(target=v.judge, args=('answer', '4', {POWER_TOWER!r}, 600.0), daemon=True).start()\n"
        "time.sleep(1.0)\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "ready"
        workers = list(_children(parent.pid))
        assert len(workers) == 2  # the busy worker (on the power tower) and the spare
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10.0
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in workers)
    finally:
        parent.kill()


# ---- the learner: a non-finite update is skipped, weights and optimizer state untouched ----

@pytest.mark.parametrize("zero_stage", [-1, 2])
def test_a_non_finite_gradient_or_loss_skips_the_update(tiny_llama, tmp_path, zero_stage):
    """The torch learner checks the losses and the gradient norm itself; DeepSpeed's ZeRO finds the non-finite
    gradient in its step and skips it (its client optimizer's state and our schedule stay)."""
    from lmmr1_agent.learner.config import resolve
    from lmmr1_agent.learner.workers import LocalWorkers

    if zero_stage >= 0:
        pytest.importorskip("deepspeed", reason="the DeepSpeed learner needs the deepspeed extra")
    config = resolve({"stage": "fre", "model": str(tiny_llama), "envs": [{"id": "Toy/Digits-v0", "weight": 1.0,
                      "kwargs": {}}], "n_samples_per_prompt": 4, "rollout_batch_size": 2, "train_batch_size": 8,
                      "micro_train_batch_size": 4, "generate_max_len": 6, "actor_learning_rate": 1e-3,
                      "skip_zero_advantage_groups": False, "output_dir": str(tmp_path), "demonstration": False,
                      "zero_stage": zero_stage}, {})
    # (DeepSpeed's one-rank process group stays for the session: DeepSpeed keeps handles to it that a new one would
    # not replace)
    _skips_non_finite_updates(LocalWorkers(config, str(tiny_llama)))


def _skips_non_finite_updates(workers):
    import copy

    from lmmr1_agent.learner.samples import episodes_to_samples

    learner = workers.host.learner
    samples = episodes_to_samples(*workers.collect(0))
    samples[0].reward = 1.0  # a nonzero advantage somewhere, so a good update moves the weights

    def snapshot():
        return ({k: v.clone() for k, v in learner.model.state_dict().items()},
                copy.deepcopy(learner.optimizer.state_dict()), learner.scheduler.last_epoch)

    def unchanged(before):
        weights, optimizer, epoch = before
        now = learner.model.state_dict()
        assert all(torch.equal(weights[k], now[k]) for k in weights)
        assert learner.optimizer.state_dict()["state"].keys() == optimizer["state"].keys()
        for key, state in optimizer["state"].items():
            assert all(torch.equal(state[n], learner.optimizer.state_dict()["state"][key][n]) for n in state)
        assert learner.scheduler.last_epoch == epoch

    # a NaN gradient
    before = snapshot()
    param = next(p for p in learner.model.parameters() if p.requires_grad)
    hook = param.register_hook(lambda grad: grad * float("nan"))
    with pytest.warns(RuntimeWarning, match="non-finite"):
        metrics = learner.update(samples)
    hook.remove()
    assert metrics["losses/skipped_updates"] == 1
    unchanged(before)
    # a NaN loss (a reward function that returned NaN)
    poisoned = copy.deepcopy(samples)
    poisoned[1].reward = float("nan")
    with pytest.warns(RuntimeWarning, match="non-finite"):
        assert learner.update(poisoned)["losses/skipped_updates"] == 1
    unchanged(before)
    # and a finite update goes through
    assert learner.update(samples)["losses/skipped_updates"] == 0
    name = "model.embed_tokens.weight"
    assert not torch.equal(before[0][name], learner.model.state_dict()[name])


# ---- the run folder: one writer, damaged checkpoints, leftover temporaries ----

def test_a_second_writer_on_the_same_run_folder_is_a_one_line_error(tiny_llama, tmp_path):
    holder_code = ("import sys, time\nfrom lmmr1_agent.learner.checkpoint import RunLock\n"
                   f"with RunLock({str(tmp_path / 'run')!r}):\n    print('held', flush=True)\n    time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", holder_code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        second = subprocess.run(train_command(tiny_llama, tmp_path / "run", 1), cwd=ROOT, capture_output=True,
                                text=True, timeout=300)
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert "Traceback" not in second.stderr
        assert f"is in use by pid {holder.pid}" in lines[-1] and "--output-dir" in lines[-1]
        # The holder is SIGKILLed: its lock goes with it, nothing stale is left to clean up by hand.
        holder.kill()
        holder.wait()
        with RunLock(tmp_path / "run"):
            with pytest.raises(RunFolderBusy):
                RunLock(tmp_path / "run").__enter__()
    finally:
        holder.kill()


def test_a_damaged_latest_checkpoint_is_reported_and_the_previous_one_used(tiny_llama, tmp_path):
    from transformers import AutoTokenizer, LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(tiny_llama)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    first = save_checkpoint(tmp_path, 1, model, tokenizer, optimizer, scheduler, {"evals": []}, keep=3)
    second = save_checkpoint(tmp_path, 2, model, tokenizer, optimizer, scheduler, {"evals": []}, keep=3)
    lines = []
    assert latest_checkpoint(tmp_path, report=lines.append) == second and not lines
    weights = second / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a truncated copy
    assert latest_checkpoint(tmp_path, report=lines.append) == first
    assert "step_000002 is damaged: model.safetensors is" in lines[0] and "resuming from step_000001" in lines[0]
    (first / "trainer_state.json").write_text('{"step": 1, "sched')  # bad JSON as well: nothing intact is left
    with pytest.raises(ConfigError, match="no intact checkpoint"):
        latest_checkpoint(tmp_path)


def test_resume_skips_a_damaged_checkpoint_and_removes_leftover_temporaries(tiny_llama, tmp_path):
    run = tmp_path / "run"
    done = subprocess.run(train_command(tiny_llama, run, 3), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    stage = run / "fre"
    import shutil

    shutil.rmtree(stage / "final")  # as if killed before the end
    (stage / "checkpoints" / "step_000003" / "trainer_state.json").write_text("{")
    leftover = stage / "checkpoints" / ".step_000004.tmp-999999"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"\0" * 1024)
    resumed = subprocess.run(train_command(tiny_llama, run, 3), cwd=ROOT, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "step_000003 is damaged" in resumed.stderr and "resuming fre from step_000002 (step 2)" in resumed.stderr
    assert f"removed {leftover}" in resumed.stderr and not leftover.exists()
    rows = [json.loads(line) for line in (stage / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert (stage / "final" / "summary.json").is_file()


def test_the_pool_size_comes_from_the_environment_when_set(monkeypatch):
    from lmmr1_env.math_pool import default_workers

    monkeypatch.setenv("LMMR1_MATH_WORKERS", "3")
    assert MathVerifier().size == 3
    monkeypatch.setenv("LMMR1_MATH_WORKERS", "zero")
    with pytest.raises(ValueError, match="LMMR1_MATH_WORKERS must be a whole number"):
        default_workers()
