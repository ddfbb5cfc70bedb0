"""LMMR1/TextMath-v0: procedural families, splits, dataset loaders and their errors."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import lmmr1_env  # noqa: F401  (registers the ids)
from lmmr1_env.datasets import DatasetError, split_of_text
from lmmr1_env.rewards import score_math
from lmmr1_env.textmath.env import generate_task
from lmmr1_env.textmath.generators import DIFFICULTIES, FAMILIES, latex_number


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_every_family_and_difficulty_solves_through_the_reward(family, difficulty):
    """The gold answer earns full accuracy; the gold plus one earns none; a worked solution ends on the gold."""
    seen = set()
    for seed in range(6):
        row = FAMILIES[family](np.random.default_rng(seed), difficulty)
        assert set(row) - {"solution"} == {"problem", "answer"} and row["problem"] and row["answer"]
        if "solution" in row:
            assert row["solution"].rsplit(" = ", 1)[1] == row["answer"], row
        seen.add(row["problem"])
        assert score_math(f"<think>t</think><answer>{row['answer']}</answer>", row["answer"]).reward == 1.5
        wrong = f"{row['answer']} + 1"
        assert score_math(f"<think>t</think><answer>{wrong}</answer>", row["answer"]).reward == 0.5, row
    assert len(seen) >= 4, f"{family} d{difficulty} repeats itself"


def test_answers_are_exact_numbers():
    from fractions import Fraction
    assert latex_number(Fraction(5, 2)) == "2.5"
    assert latex_number(Fraction(-1, 3)) == "-\\frac{1}{3}"
    assert latex_number(Fraction(167, 8)) == "20.875"
    assert latex_number(12) == "12"


def test_difficulty_changes_the_problems():
    easy = gym.make("LMMR1/TextMath-v0", families=["arithmetic"], difficulty=1)
    hard = gym.make("LMMR1/TextMath-v0", families=["arithmetic"], difficulty=5)
    assert "^2" in hard.reset(seed=0)[0]["text"] and "^2" not in easy.reset(seed=0)[0]["text"]
    mixed = gym.make("LMMR1/TextMath-v0", difficulty=[1, 5])
    assert {mixed.reset(seed=s)[1]["task"]["difficulty"] for s in range(40)} == {1, 5}


def test_no_test_problem_is_a_training_problem():
    train = {generate_task("train", s, tuple(FAMILIES), (1, 2))["problem"] for s in range(3000)}
    test = {generate_task("test", s, tuple(FAMILIES), (1, 2))["problem"] for s in range(600)}
    assert not train & test
    assert all(split_of_text(p) == "test" for p in test)
    assert len(test) > 300  # difficulty 1 spaces are small (a + b with a, b ≤ 20), so seeds repeat there


def test_bad_arguments_fail_loudly():
    with pytest.raises(ValueError, match="families"):
        gym.make("LMMR1/TextMath-v0", families=["calculus"])
    with pytest.raises(ValueError, match="difficulty"):
        gym.make("LMMR1/TextMath-v0", difficulty=9)
    with pytest.raises(ValueError, match="reward_mode"):
        gym.make("LMMR1/TextMath-v0", reward_mode="strict")
    with pytest.raises(ValueError, match="split"):
        gym.make("LMMR1/TextMath-v0", split="dev")
    env = gym.make("LMMR1/TextMath-v0")
    with pytest.raises(gym.error.ResetNeeded):  # Gymnasium's OrderEnforcing wrapper
        env.step("<think></think><answer>1</answer>")
    with pytest.raises(RuntimeError, match="before reset"):
        env.unwrapped.step("<think></think><answer>1</answer>")


def test_info_carries_the_contract():
    env = gym.make("LMMR1/TextMath-v0")
    obs, info = env.reset(seed=7)
    assert obs["text"] == info["task"]["problem"]
    assert info["system_prompt"] == env.get_wrapper_attr("system_prompt")
    _, reward, terminated, truncated, info = env.step(f"<think>x</think><answer>{info['answer']}</answer>")
    assert (reward, terminated, truncated, info["success"]) == (1.5, True, False, True)
    assert info["reward_terms"] == {"format": 0.5, "accuracy": 1.0}
    assert "parse_error" not in info


@pytest.mark.parametrize("mode", ["answer", "lmmr1"])
def test_demonstration_earns_full_marks_in_its_mode(mode):
    env = gym.make("LMMR1/TextMath-v0", reward_mode=mode)
    user, assistant = env.get_wrapper_attr("demonstration")
    assert user["content"] == "What is 7 + 5?"
    assert score_math(assistant["content"], "12", mode=mode).reward == 1.5


def test_replaying_a_logged_task_row():
    env = gym.make("LMMR1/TextMath-v0")
    row = {"id": "mine", "problem": "What is 6 × 7?", "answer": "42"}
    obs, info = env.reset(seed=0, options={"task": row})
    assert obs["text"] == row["problem"] and info["answer"] == "42"


# ---- datasets ----

def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_lmmr1_message_format(tmp_path):
    chat = [{"role": "system", "content": "Answer in LaTeX."},
            {"role": "user", "content": [{"type": "text", "text": "What is $6 \\times 7$?"}]}]
    path = _write_jsonl(tmp_path / "lmmr1.jsonl", [{"message": json.dumps(chat), "answer": "$\\boxed{42}$"},
                                                   {"message": json.dumps(chat[1:]), "answer": "$42$"}])
    env = gym.make("LMMR1/TextMath-v0", dataset=str(path))
    obs, info = env.reset(seed=0)
    assert obs["text"] == "What is $6 \\times 7$?"
    assert info["system_prompt"] == "Answer in LaTeX."  # the row's own system message
    assert env.step("<think>6*7</think><answer>42</answer>")[1] == 1.5
    _, info = env.reset(seed=1)
    assert info["system_prompt"] == env.get_wrapper_attr("system_prompt")
    _, info = env.reset(seed=2)  # seed s plays row s mod N
    assert info["answer"] == "$\\boxed{42}$"


def test_plain_rows_list_of_dicts_and_numeric_answers():
    env = gym.make("LMMR1/TextMath-v0", dataset=[{"problem": "1 + 1?", "answer": 2},
                                                  {"question": "Half of 1?", "answer": "\\frac{1}{2}"}])
    env.reset(seed=1)
    assert env.step("<think>.</think><answer>0.5</answer>")[1] == 1.5
    env.reset(seed=0)
    assert env.step("<think>.</think><answer>2</answer>")[1] == 1.5


def test_json_file_and_split_field(tmp_path):
    rows = [{"problem": f"{i} + 1?", "answer": str(i + 1), "split": "test" if i % 3 == 0 else "train"}
            for i in range(9)]
    path = tmp_path / "data.json"
    path.write_text(json.dumps(rows))
    test_env = gym.make("LMMR1/TextMath-v0", dataset=str(path), split="test")
    assert len(test_env.unwrapped.rows) == 3
    assert {test_env.reset(seed=s)[1]["answer"] for s in range(3)} == {"1", "4", "7"}
    assert len(gym.make("LMMR1/TextMath-v0", dataset=str(path)).unwrapped.rows) == 6


def test_builtin_sample_is_split_by_hash():
    train = gym.make("LMMR1/TextMath-v0", dataset="sample").unwrapped.rows
    test = gym.make("LMMR1/TextMath-v0", dataset="sample", split="test").unwrapped.rows
    assert len(train) + len(test) == 40 and test
    assert not {r["problem"] for r in train} & {r["problem"] for r in test}


@pytest.mark.parametrize("content,message", [
    ('{"problem": "1+1"}\n', "record 1 of bad.jsonl: no 'answer' field"),
    ('{"problem": "1+1", "answer": "2"}\n{not json\n', "line 2 of bad.jsonl is not valid JSON"),
    ('{"answer": "2"}\n', "record 1 of bad.jsonl: no 'problem'"),
    ('[1, 2]\n', "record 1 of bad.jsonl: expected a JSON object"),
    ('{"problem": "", "answer": "2"}\n', "problem text is empty"),
    ('{"problem": "1+1", "answer": null}\n', "'answer' must be a string or a number"),
    ('{"message": "not json", "answer": "2"}\n', "is a string but not a JSON chat list"),
    ('{"message": "[{\\"role\\": \\"user\\", \\"content\\": [{\\"type\\": \\"image\\", \\"image\\": \\"a.png\\"}, '
     '{\\"type\\": \\"text\\", \\"text\\": \\"x\\"}]}]", "answer": "2"}\n', "use LMMR1/VisualMath-v0"),
    ('{"message": "[{\\"role\\": \\"assistant\\", \\"content\\": \\"hi\\"}]", "answer": "2"}\n',
     "'assistant' messages"),
    ('{"problem": "1+1", "answer": "2", "split": "holdout"}\n', "split 'holdout'"),
    ('', "has no records"),
])
def test_bad_dataset_rows_name_the_record(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DatasetError, match=None) as err:
        gym.make("LMMR1/TextMath-v0", dataset=str(path))
    assert message in str(err.value)


def test_missing_dataset_file():
    with pytest.raises(DatasetError, match="not found"):
        gym.make("LMMR1/TextMath-v0", dataset="/no/such/file.jsonl")


def test_split_requested_but_absent(tmp_path):
    path = _write_jsonl(tmp_path / "d.jsonl", [{"problem": "1+1", "answer": "2", "split": "train"}])
    with pytest.raises(DatasetError, match="no records for split 'test'"):
        gym.make("LMMR1/TextMath-v0", dataset=str(path), split="test")


def test_a_batch_of_envs_is_scored_in_one_verifier_round_trip_with_the_same_results(monkeypatch):
    from lmmr1_agent.rollout import step_all
    from lmmr1_env import rewards

    calls = []
    judge_many = rewards._VERIFIER.judge_many
    monkeypatch.setattr(rewards._VERIFIER, "judge_many",
                        lambda requests, timeout: calls.append(len(requests)) or judge_many(requests, timeout))

    def played(seeds):
        envs = [gym.make("LMMR1/TextMath-v0", families=["arithmetic"], difficulty=2) for _ in seeds]
        return envs, [env.reset(seed=s)[1]["answer"] for env, s in zip(envs, seeds)]

    seeds = list(range(12))
    envs, golds = played(seeds)
    # Half need math-verify (a product for an integer), half are decided by strings; one is malformed.
    actions = [f"<think>w</think><answer>1 \\cdot ({g})</answer>" if i % 2 else
               f"<think>w</think><answer>{g}</answer>" for i, g in enumerate(golds)]
    actions[3] = "no tags"
    together = step_all(envs, actions)
    assert calls == [5]
    lone_envs, _ = played(seeds)
    alone = [env.step(action) for env, action in zip(lone_envs, actions)]
    for (_, r1, *_, i1), (_, r2, *_, i2) in zip(together, alone):
        assert r1 == r2 and i1 == i2
    assert [r for _, r, *_ in together].count(1.5) == 11
