"""The math reward: format rule, both accuracy modes, math-verify's known quirks, hostile input."""

from __future__ import annotations

import dataclasses
import os
import threading
import time

import pytest

from lmmr1_env.math_judge import JUDGES, judge_answer, verify_answer
from lmmr1_env.math_quick import quick_answer_verdict
from lmmr1_env.rewards import MathVerifier, extract_answer, format_ok, score_math, score_math_batch, strip_eos


def wrap(answer: str, think: str = "work") -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"


# ---- format ----

@pytest.mark.parametrize("response", [
    "<think>a</think><answer>1</answer>",
    "  <think>a\nb</think><answer>1</answer>\n",
    "<think></think><answer></answer>",
    "<think>a</think><answer>1</answer><|im_end|>",
    "<think>a</think><answer>1</answer><|endoftext|>",
    "<think>a</think><answer>1</answer><end_of_turn>",
])
def test_format_accepts_exact_think_answer(response):
    assert format_ok(strip_eos(response))


@pytest.mark.parametrize("response", [
    "<think>a</think> <answer>1</answer>",          # text between the pairs
    "<think>a</think>\n<answer>1</answer>",
    "hello <think>a</think><answer>1</answer>",     # text before
    "<think>a</think><answer>1</answer> bye",       # text after
    "<answer>1</answer>",                           # no think
    "<think>a</think>",                             # no answer
    "<think>a<think>b</think><answer>1</answer>",   # two <think>
    "<think>a</think><answer>1</answer><answer>2</answer>",
    "<answer>1</answer><think>a</think>",           # wrong order
    "<think>a</think><answer>1",                    # unclosed
])
def test_format_rejects(response):
    assert not format_ok(strip_eos(response))
    assert score_math(response, "1").terms["format"] == 0.0


def test_extract_answer_takes_last_pair():
    assert extract_answer("<answer> 1 </answer> then <answer>2</answer>") == "2"
    assert extract_answer("no tags") is None


# ---- accuracy, "answer" mode ----

@pytest.mark.parametrize("gold,prediction", [
    ("3", "3"), ("3", "$3$"), ("3", "\\boxed{3}"), ("3", "$\\boxed{3}$"), ("3", "3.0"),
    ("\\frac{1}{2}", "0.5"), ("0.5", "\\frac{1}{2}"), ("\\frac{1}{2}", "1/2"), ("\\frac12", "\\frac{1}{2}"),
    ("$\\boxed{60}$", "60"), ("-\\frac{3}{4}", "-0.75"), ("5\\sqrt{2}", "\\sqrt{50}"), ("9\\pi", "9 \\pi"),
    ("x^2+1", "1+x^2"), ("(3,-1)", "(3, -1)"), ("x=5", "5"), ("10\\%", "10"), ("1,000", "1000"),
    ("\\sqrt{3}", "\\sqrt3"), ("A", "A"), ("B", "(B)"), ("C", "C) 12"), ("D", "\\boxed{D}"), ("(A)", "A"),
    ("\\text{Monday}", "Monday"), ("12", "12 cm"),
])
def test_answer_mode_equivalent_forms_score(gold, prediction):
    score = score_math(wrap(prediction), gold)
    assert score.terms == {"format": 0.5, "accuracy": 1.0}, score
    assert score.reward == 1.5 and score.parse_error is None


@pytest.mark.parametrize("gold,prediction", [
    ("3", "4"), ("\\frac{1}{2}", "0.51"), ("A", "B"), ("A", "(C)"), ("x^2+1", "x^2-1"), ("12", "-12"),
    ("(3,-1)", "(-1, 3)"),
])
def test_answer_mode_wrong_answers_score_format_only(gold, prediction):
    score = score_math(wrap(prediction), gold)
    assert score.terms == {"format": 0.5, "accuracy": 0.0}


def test_accuracy_counts_without_format():
    score = score_math("The answer: <answer>7</answer>", "7")
    assert score.terms == {"format": 0.0, "accuracy": 1.0}


def test_unreadable_answers_say_why():
    assert "no <answer>" in score_math("I think it is 7", "7").parse_error
    assert "empty" in score_math(wrap(""), "7").parse_error
    long = score_math(wrap("1" * 20_000), "7")
    assert long.reward == 0.5 and "characters long" in long.parse_error


def test_known_math_verify_false_negatives_are_kept():
    """math-verify's behaviour, not ours to hide (docs/design.md)."""
    assert score_math(wrap("\\frac{2n}{2}"), "n").terms["accuracy"] == 0.0
    assert score_math(wrap("n+0"), "n").terms["accuracy"] == 0.0


# ---- accuracy, "lmmr1" mode (LMM-R1's verifier exactly) ----

@pytest.mark.parametrize("response,gold,accuracy", [
    (wrap("$3$"), "3", 1.0),
    (wrap("3"), "3", 0.0),                                       # a bare answer is not read
    (wrap("\\boxed{3}"), "3", 1.0),
    ("<think>so \\boxed{5}</think><answer>$3$</answer>", "3", 0.0),  # \boxed{} anywhere wins
    ("<think>so \\boxed{3}</think><answer>$5$</answer>", "3", 1.0),
    ("The final answer is $3$", "3", 1.0),
    (wrap("$\\frac12$"), "\\frac{1}{2}", 0.0),                  # malformed_operators=False
    (wrap("$\\sqrt3$"), "\\sqrt{3}", 0.0),
    (wrap("$\\frac{1}{2}$"), "$\\frac{1}{2}$", 1.0),              # gold already in $...$
    (wrap("$7$"), "\\text{}", 1.0),                            # gold that does not parse scores 1.0
    (wrap("$3$") + "<|im_end|>", "3", 1.0),
])
def test_lmmr1_mode(response, gold, accuracy):
    assert score_math(response, gold, mode="lmmr1").terms["accuracy"] == accuracy


def test_lmmr1_mode_format_is_the_same_rule():
    assert score_math("<think>a</think> <answer>$3$</answer>", "3", mode="lmmr1").terms == {"format": 0.0,
                                                                                            "accuracy": 1.0}


# ---- batches: the string fast path, deduplication and one round trip change no verdict ----

def _answer_forms(value: int) -> list[str]:
    return [str(value), f"{value}.0", f"{value}.50", f"${value}$", f"\\boxed{{{value}}}", f"{value}.",
            f"0{value}" if value >= 0 else str(value), f"$\\boxed{{{value}}}$", f" {value} "]


def test_the_string_fast_path_agrees_with_math_verify():
    decided = 0
    for gold in [0, 7, 12, -3, 100, 2024, 17.5]:
        for said in {gold, gold + 1, gold - 1, -gold, 10 * gold}:
            for prediction in _answer_forms(said):
                quick = quick_answer_verdict(str(gold), prediction)
                if quick is None:
                    continue
                decided += 1
                assert quick["accuracy"] == verify_answer(str(gold), prediction)["accuracy"], (gold, prediction)
    for gold, prediction in [("\\frac{1}{2}", "\\dfrac{1}{2}"), ("17.5", "$17.5$"), ("2\\sqrt{3}", "2\\sqrt{3}"),
                             ("\\frac{1}{2}", "0.5"), ("6", "\\frac{12}{2}"), ("-\\frac{5}{18}", "\\frac{-10}{36}"),
                             ("49\\pi", "49\\pi"), ("\\frac{81}{4}\\pi", "\\frac{81\\pi}{4}"),
                             ("0.5\\pi", "\\frac{\\pi}{2}")]:
        assert quick_answer_verdict(gold, prediction)["accuracy"] == verify_answer(gold, prediction)["accuracy"] == 1.0
    for gold, prediction in [("-\\frac{5}{18}", "16"), ("\\frac{13}{15}", "0.8"), ("17.5", "\\frac{7}{2}"),
                             ("100000000000000000000", "100000000000000000001"), ("0.5", "50"),
                             ("49\\pi", "0"), ("49\\pi", "154"), ("36\\pi", "\\frac{81}{4}\\pi"), ("-\\pi", "\\pi")]:
        assert quick_answer_verdict(gold, prediction)["accuracy"] == verify_answer(gold, prediction)["accuracy"] == 0.0
    # Close but unequal: math-verify rounds floats to 6 places and calls these equal; the fast path leaves them to it.
    for gold, prediction in [("\\frac{1}{3}", "0.333333"), ("17.5", "17.5000001"), ("\\pi", "3.1415926")]:
        assert quick_answer_verdict(gold, prediction) is None and verify_answer(gold, prediction)["accuracy"] == 1.0
    assert decided > 100
    assert quick_answer_verdict("12", "6 \\cdot 2") is None  # math-verify's to judge


def test_a_value_assigned_to_a_letter_is_judged_as_math_verify_judges_it():
    """``x = 12`` against a gold that is no equation: math-verify compares the right-hand side; so does the fast
    path, for every letter (``e`` and ``i`` included: on the left of ``=`` math-verify reads them as symbols)."""
    import string

    cases = [("12", "12"), ("12", "13"), ("12", "012"), ("-3", "-3"), ("\\frac{1}{2}", "0.5"), ("10\\pi", "10\\pi"),
             ("17.5", "\\frac{7}{2}"), ("49\\pi", "154")]
    for letter in string.ascii_letters:
        for gold, value in cases:
            prediction = f"{letter} = {value}"
            quick = quick_answer_verdict(gold, prediction)
            assert quick is not None and quick["how"] in ("integer", "number"), prediction
            assert quick["accuracy"] == verify_answer(gold, prediction)["accuracy"], (gold, prediction)
    # not a single letter's value, or a gold that is an equation: math-verify's to judge
    for gold, prediction in [("12", "x = 12 = 13"), ("12", "x_1 = 12"), ("12", "2x = 24"), ("12", "xy = 12"),
                             ("x = 12", "y = 12"), ("12", "x = 6 \\cdot 2")]:
        assert quick_answer_verdict(gold, prediction) is None, (gold, prediction)


def test_digits_apart_are_not_joined_into_one_number():
    """Normalising drops spaces and thin spaces; between digits that would make ``1 2`` twelve, which math-verify
    does not read it as: such answers are its to judge."""
    for gold, prediction in [("12", "1 2"), ("12", "x = 1 2"), ("1000", "1\\,000"), ("1000", "x = 1\\,000"),
                             ("1 2", "12")]:
        assert quick_answer_verdict(gold, prediction) is None, (gold, prediction)
        assert verify_answer(gold, prediction)["accuracy"] == judge_answer(gold, prediction)["accuracy"]
    assert quick_answer_verdict("7" * 101, "7" * 101)["how"] == "exact"
    assert quick_answer_verdict("7" * 101, "0" + "7" * 101) is None  # no int() of unbounded digit strings


def _corpus() -> list[tuple[str, str]]:
    rows = []
    for k, gold in enumerate(["12", "-3", "\\frac{13}{15}", "17.5", "B", "2\\sqrt{3}"]):
        rows += [(wrap(gold), gold), (wrap(gold), gold), (wrap(f"${gold}$", think=f"step {k}"), gold),
                 (wrap("13"), gold), (wrap("0.5"), gold), (f"<answer>{gold}", gold), (wrap(""), gold),
                 ("no tags at all " + gold, gold), (wrap("\\boxed{" + gold + "}") + "<|im_end|>", gold),
                 (wrap("(B) because"), gold), (wrap("x" * 10_001), gold)]
    return rows


@pytest.mark.parametrize("mode", ["answer", "lmmr1"])
def test_a_batch_scores_exactly_as_its_responses_one_by_one(mode):
    rows = _corpus()
    batch = score_math_batch([r for r, _ in rows], [g for _, g in rows], mode=mode)
    for (response, gold), together in zip(rows, batch):
        alone = score_math(response, gold, mode=mode)
        assert (together.reward, together.terms, together.parse_error, together.prediction, together.timed_out,
                together.gold_parsed) == (alone.reward, alone.terms, alone.parse_error, alone.prediction,
                                          alone.timed_out, alone.gold_parsed), response
        if alone.parse_error is None or "no answer it could read" in alone.parse_error:
            judged = extract_answer(strip_eos(response)) if mode == "answer" else strip_eos(response)
            assert together.terms["accuracy"] == JUDGES[mode](gold, judged)["accuracy"], response
    assert len({s.reward for s in batch}) > 2


@pytest.fixture
def recording_verifier():
    """A one-worker verifier and the list of request lists its ``judge_many`` got (the real one runs)."""
    verifier, calls = MathVerifier(1), []
    judge_many = verifier.judge_many
    verifier.judge_many = lambda requests, timeout: calls.append(list(requests)) or judge_many(requests, timeout)
    yield verifier, calls
    verifier.close()


def test_a_batch_judges_each_distinct_answer_once(recording_verifier):
    verifier, calls = recording_verifier
    responses = [wrap("3 \\cdot 4")] * 8 + [wrap("12")] * 8 + [wrap("13")] * 8 + [wrap("6 \\cdot 2")] * 4
    scores = score_math_batch(responses, ["12"] * len(responses), verifier=verifier)
    assert [s.terms["accuracy"] for s in scores] == [1.0] * 16 + [0.0] * 8 + [1.0] * 4
    # "12" and "13" are decided by strings; the two others reach math-verify once each, in one call.
    assert calls == [[("answer", "12", "3 \\cdot 4"), ("answer", "12", "6 \\cdot 2")]]


def test_lmmr1_mode_asks_once_per_gold_for_responses_it_can_extract_nothing_from(recording_verifier):
    verifier, calls = recording_verifier
    plain = [wrap(str(k), think=f"try {k}") for k in range(6)]  # no $, \\ or [: nothing to extract
    responses = plain + plain + [wrap("$12$")]
    golds = ["12"] * 6 + ["\\text{}"] * 6 + ["12"]  # \\text{} does not parse: LMM-R1 gives such a gold 1.0
    together = score_math_batch(responses, golds, mode="lmmr1", verifier=verifier)
    # One request per gold and the one with $12$; the other ten follow from their gold's parse.
    assert [len(c) for c in calls] == [3]
    assert [s.terms["accuracy"] for s in together] == [0.0] * 6 + [1.0] * 6 + [1.0]
    for response, gold, score in zip(responses, golds, together):
        assert score.terms["accuracy"] == JUDGES["lmmr1"](gold, strip_eos(response))["accuracy"]
        assert score == dataclasses.replace(score_math(response, gold, mode="lmmr1"), seconds=score.seconds)


def test_a_batch_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="2 responses but 1 gold"):
        score_math_batch(["a", "b"], ["1"])


# ---- hostile input: bounded time, never raises, never runs model text ----

HOSTILE = [
    "9^{9^{9^{9}}}",
    "(10^{10})!",
    "\\frac{" * 2000 + "1" + "}{2}" * 2000,
]


@pytest.mark.parametrize("mode", ["answer", "lmmr1"])
@pytest.mark.parametrize("payload", HOSTILE, ids=["power-tower", "factorial", "nested-frac"])
def test_hostile_answers_score_zero_within_budget(mode, payload):
    start = time.monotonic()
    score = score_math(wrap(f"$\\boxed{{{payload}}}$"), "4", mode=mode, timeout=1.0)
    elapsed = time.monotonic() - start
    assert score.terms["accuracy"] == 0.0
    assert elapsed < 10.0  # budget 1 s; the margin covers a loaded CI machine
    assert score.parse_error is not None
    assert len(score.parse_error) < 300 and (score.prediction is None or len(score.prediction) < 300)


def test_timeout_is_reported_and_the_next_response_is_judged():
    verifier = MathVerifier()
    try:
        slow = score_math(wrap("$9^{9^{9^{9}}}$"), "4", timeout=1.0, verifier=verifier)
        assert slow.timed_out and "budget" in slow.parse_error
        assert verifier.restarts == 1
        assert score_math(wrap("4"), "4", verifier=verifier).reward == 1.5
    finally:
        verifier.close()


def test_megabyte_and_binary_responses(tmp_path):
    big = "<think>" + "a" * (1 << 20) + "</think><answer>5</answer>"
    assert score_math(big, "5").reward == 1.5
    assert score_math(big, "5", mode="lmmr1", timeout=2.0).terms["format"] == 0.5
    junk = bytes(range(256)).decode("latin-1") * 4000
    for mode in ("answer", "lmmr1"):
        assert score_math(junk, "5", mode=mode, timeout=2.0).reward == 0.0


def test_model_text_is_never_run_as_code(tmp_path):
    marker = tmp_path / "pwned"
    payloads = [f"__import__('os').system('touch {marker}')", f"exec(\"open('{marker}', 'w')\")",
                f"$__import__('os').system('touch {marker}')$", f"(lambda: open('{marker}', 'w'))()"]
    for payload in payloads:
        for mode in ("answer", "lmmr1"):
            assert score_math(wrap(payload), "0", mode=mode).terms["accuracy"] == 0.0
    assert not marker.exists()


def test_threads_share_one_verifier_safely():
    results = {}

    def judge(k):
        results[k] = score_math(wrap(str(k)), str(k)).reward

    threads = [threading.Thread(target=judge, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {k: 1.5 for k in range(16)}


def test_a_forked_child_gets_its_own_worker():
    assert score_math(wrap("2"), "2").reward == 1.5  # the parent's worker is running
    pid = os.fork()
    if pid == 0:  # child: must not talk on the parent's pipe
        os._exit(0 if score_math(wrap("3"), "3").reward == 1.5 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert score_math(wrap("5"), "5").reward == 1.5


def test_non_str_response_is_a_programmer_error():
    with pytest.raises(TypeError):
        score_math(b"<think></think><answer>1</answer>", "1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reward_mode"):
        score_math("x", "1", mode="boxed")


def test_the_reward_benchmark_runs_and_finds_every_verdict_equal_to_lmm_r1s():
    """bench/bench_reward.py, tiny: its peer (LMM-R1's server logic) and its verdict checks still run."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "bench" / "bench_reward.py"
    done = subprocess.run([sys.executable, str(script), "--prompts", "4", "--samples", "4", "--repeats", "1",
                           "--hostile", "0", "--single", "2", "--peer-workers", "1"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "verdicts: identical" in done.stdout and "vs LMM-R1" in done.stdout
