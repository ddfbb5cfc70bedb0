"""LMMR1/VisualMath-v0: procedural families, the image being necessary, splits, image datasets and their errors."""

from __future__ import annotations

import ast
import json
import math
import operator
import re
from collections import defaultdict
from fractions import Fraction

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

import lmmr1_env  # noqa: F401  (registers the ids)
from lmmr1_env.datasets import DatasetError, split_of_text
from lmmr1_env.rewards import score_math
from lmmr1_env.visualmath.env import generate_task, render_task, split_key
from lmmr1_env.visualmath.generators import DIFFICULTIES, FAMILIES

SEEDS = range(30)
#: The answer forms the families promise: integer, exact decimal, \frac{p}{q}, k\pi, or a letter A–D.
_ANSWER = re.compile(r"^(-?\d+(\.\d+)?|-?\\frac\{\d+\}\{\d+\}|(\d+|\\frac\{\d+\}\{\d+\})?\\pi|[A-D])$")


def _spec(family: str, seed: int) -> dict:
    """Seed s of a family at difficulty 1 + s mod 5 (the question, answer and figure parameters)."""
    return FAMILIES[family].draw(np.random.default_rng(seed), DIFFICULTIES[seed % len(DIFFICULTIES)])


def _response(answer: str) -> str:
    return f"<think>reading the figure</think><answer>{answer}</answer>"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_solves_through_the_reward(family):
    """The gold answer earns full accuracy; a perturbed one (another letter for multiple choice) earns none."""
    for seed in SEEDS:
        spec = _spec(family, seed)
        answer = spec["answer"]
        assert _ANSWER.match(answer), (family, seed, answer)
        assert score_math(_response(answer), answer).reward == 1.5, (family, seed, spec["problem"], answer)
        wrong = "ABCD"[("ABCD".index(answer) + 1) % 4] if answer in "ABCD" else f"{answer} + 1"
        assert score_math(_response(wrong), answer).reward == 0.5, (family, seed, wrong)


def _numbers(text: str) -> set[str]:
    return set(re.findall(r"(?<![\d.])\d+(?:\.\d+)?(?![\d.])", text))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_image_is_necessary(family):
    """No number needed to answer is in the question; the same question has different answers across figures."""
    answers_by_question = defaultdict(set)
    for seed in range(60):
        spec = _spec(family, seed)
        operands = {str(abs(v)) for v in spec["params"]["operands"]}
        assert operands, (family, seed, "a family must say which numbers the figure holds")
        said = _numbers(spec["problem"])
        assert not operands & said, (family, seed, spec["problem"], sorted(operands & said))
        if spec["answer"] not in "ABCD":
            assert not _numbers(spec["answer"]) & said, (family, seed, spec["problem"], spec["answer"])
        answers_by_question[spec["problem"]].add(spec["answer"])
    assert any(len(a) > 1 for a in answers_by_question.values()), f"{family}: the question text fixes the answer"


_NUMBER = r"\d+(?:\.\d+)?"
#: ``expression = value [= value ...]``: numbers, + - × ÷ / ( ) ² √, in a worked solution's plain text.
_SIDE = rf"-?(?:{_NUMBER}|[(√])(?:{_NUMBER}|[()+\-×÷/²√]| )*"
_CHAIN = re.compile(rf"{_SIDE}(?: = {_SIDE})+")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow}


def _value(expression: str) -> Fraction:
    """An arithmetic expression of a worked solution, exactly (a test's own text: only numbers and operators)."""
    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant):
            return Fraction(str(node.value))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "root" and len(node.args) == 1:
            square = walk(node.args[0])
            root = Fraction(math.isqrt(square.numerator), math.isqrt(square.denominator))
            assert root * root == square, f"{expression!r}: not a perfect square"
            return root
        raise ValueError(f"not arithmetic: {expression!r}")
    python = re.sub(r"√(\d+)", r"root(\1)", expression).replace("√", "root")
    python = python.replace("×", "*").replace("÷", "/").replace("²", "**2")
    return walk(ast.parse(python.strip(), mode="eval").body)


def _plain_answer(answer: str) -> str:
    """The answer as the solution's text writes it: ``\\frac{3}{2}\\pi`` -> ``(3/2)π``, ``\\frac{1}{8}`` -> ``1/8``."""
    text = re.sub(r"\\frac\{(\d+)\}\{(\d+)\}", r"\1/\2", answer)
    if text.endswith("\\pi"):
        k = text[:-3]
        return f"({k})π" if "/" in k else f"{k}π"
    return text


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_row_carries_a_worked_solution_that_reaches_its_answer(family):
    """Each step ``a × b = c`` of a row's solution is exact arithmetic, the last step's value is the answer (its
    multiple of π), and the last sentence names the answer; the solution lies outside ``params`` (the split)."""
    chains = 0
    for seed in range(60):
        spec = _spec(family, seed)
        solution, answer = spec["solution"], spec["answer"]
        assert solution and "solution" not in spec["params"], (family, seed)
        found = [m.group(0).strip() for m in _CHAIN.finditer(solution)]
        for chain in found:
            values = [_value(side) for side in chain.split(" = ")]
            assert len(set(values)) == 1, (family, seed, chain, values)
        if found and answer not in "ABCD":
            last = _value(found[-1].split(" = ")[-1])
            assert last == _value(_plain_answer(answer).rstrip("π").strip("()") or "1"), (family, seed, solution)
        assert _plain_answer(answer) in re.split(r"\. ", solution)[-1], (family, seed, solution, answer)
        chains += len(found)
    assert chains, f"{family}: no worked step in 60 problems"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_figures_are_deterministic_square_and_drawn(family):
    for difficulty in DIFFICULTIES:
        first = FAMILIES[family](np.random.default_rng(difficulty), difficulty, 448)
        again = FAMILIES[family](np.random.default_rng(difficulty), difficulty, (448, 600))
        assert first["image"].size == (448, 448) and first["image"].mode == "RGB"
        pixels = np.asarray(first["image"])
        assert np.array_equal(pixels, np.asarray(again["image"]))
        ink = (pixels.min(axis=2) < 128).mean()
        assert 0.002 < ink < 0.5, (family, difficulty, ink)  # something drawn, not a blot
        assert json.loads(json.dumps(first["params"])) == first["params"]  # rows are JSON-able
    small = FAMILIES[family](np.random.default_rng(0), 3, 224)["image"]
    assert small.size == (224, 224)


def test_multiple_choice_families_ask_a_to_d():
    seen = set()
    for family in FAMILIES:
        for seed in range(40):
            spec = _spec(family, seed)
            if spec["answer"] in ("A", "B", "C", "D"):
                seen.add(family)
                assert all(f"\n{letter}. " in spec["problem"] for letter in "ABCD"), spec["problem"]
    assert {"bar_chart", "line_chart", "table", "counting"} <= seen


# ---- the env ----

def test_observation_is_text_and_a_fixed_size_image():
    env = gym.make("LMMR1/VisualMath-v0")
    obs, info = env.reset(seed=3)
    assert obs["image"].shape == (448, 448, 3) and obs["image"].dtype == np.uint8
    assert obs["text"] == info["task"]["problem"] and "image" not in info["task"]
    assert info["system_prompt"] == env.get_wrapper_attr("system_prompt")
    _, reward, terminated, truncated, info = env.step(_response(info["answer"]))
    assert (reward, terminated, truncated, info["success"]) == (1.5, True, False, True)
    assert info["reward_terms"] == {"format": 0.5, "accuracy": 1.0} and "parse_error" not in info


def test_non_square_size_letterboxes_the_figure_on_white():
    env = gym.make("LMMR1/VisualMath-v0", image_size=(300, 500), families=["table"])
    obs, info = env.reset(seed=0)
    assert obs["image"].shape == (300, 500, 3)
    assert (obs["image"][:, :100] == 255).all() and (obs["image"][:, -100:] == 255).all()  # 100 px bands of padding
    square = FAMILIES["table"].image(info["task"]["params"], 300)
    assert np.array_equal(obs["image"][:, 100:400], np.asarray(square))  # drawn at 300 px, never stretched


def test_same_seed_same_pixels_and_replay_of_a_logged_row():
    env = gym.make("LMMR1/VisualMath-v0", difficulty=[1, 3, 5], render_mode="rgb_array")
    obs, info = env.reset(seed=11)
    again, _ = env.reset(seed=11)
    assert np.array_equal(obs["image"], again["image"]) and obs["text"] == again["text"]
    assert np.array_equal(env.render(), obs["image"])
    row = json.loads(json.dumps(info["task"]))  # what a log holds
    replay, replay_info = env.reset(seed=999, options={"task": row})
    assert np.array_equal(replay["image"], obs["image"]) and replay_info["answer"] == info["answer"]


def test_no_test_problem_is_a_training_problem():
    families, difficulties = tuple(FAMILIES), (1, 2, 3)
    train = {split_key(t["family"], t) for t in (generate_task("train", s, families, difficulties) for s in range(600))}
    test = [generate_task("test", s, families, difficulties) for s in range(200)]
    assert not train & {split_key(t["family"], t) for t in test}
    assert all(split_of_text(split_key(t["family"], t)) == "test" for t in test)
    env = gym.make("LMMR1/VisualMath-v0", split="test")
    assert env.reset(seed=0)[1]["task"]["id"].endswith("/test/0")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_easiest_test_split_is_many_figures_whose_answers_training_also_has(family):
    """Difficulty 1 has few distinct questions (twelve clock hours); the drawn layout keeps 100 test seeds 100
    different figures and leaves no test answer unseen in training (the split once held one clock: "4 o'clock")."""
    test = [generate_task("test", s, [family], [1]) for s in range(100)]
    train_answers = {generate_task("train", s, [family], [1])["answer"] for s in range(400)}
    assert len({json.dumps(t["params"], sort_keys=True) for t in test}) >= 95
    unseen = [t["answer"] for t in test if t["answer"] not in train_answers]
    assert len(unseen) <= 5, (family, unseen)


def test_layout_zooms_and_shifts_the_whole_figure():
    """The same numbers at another layout are the same drawing, smaller and moved; a row without one fills the image."""
    spec = FAMILIES["clock"].draw(np.random.default_rng(0), 1)
    full = np.asarray(FAMILIES["clock"].image(spec["params"], 224))
    assert np.array_equal(full, np.asarray(FAMILIES["clock"].image({**spec["params"], "layout": [1.0, 0, 0]}, 224)))

    def ink_box(image):
        ys, xs = np.nonzero(np.asarray(image).min(axis=2) < 128)
        return xs.min(), xs.max(), ys.min(), ys.max()

    x0, x1, y0, y1 = ink_box(full)
    small = FAMILIES["clock"].image({**spec["params"], "layout": [0.8, 20, -10]}, 224)
    s0, s1, t0, t1 = ink_box(small)
    assert abs((s1 - s0) - 0.8 * (x1 - x0)) <= 3 and abs((t1 - t0) - 0.8 * (y1 - y0)) <= 3
    # centres move by the shift (design units: 448 per image side)
    assert abs((s0 + s1) / 2 - (x0 + x1) / 2 - 20 * 224 / 448) <= 2
    assert abs((t0 + t1) / 2 - (y0 + y1) / 2 + 10 * 224 / 448) <= 2


def test_families_and_difficulty_arguments():
    env = gym.make("LMMR1/VisualMath-v0", families=["clock"], difficulty=5)
    for seed in range(5):
        _, info = env.reset(seed=seed)
        assert info["task"]["family"] == "clock" and info["task"]["difficulty"] == 5
    mixed = gym.make("LMMR1/VisualMath-v0", difficulty=[1, 4])
    assert {mixed.reset(seed=s)[1]["task"]["difficulty"] for s in range(30)} == {1, 4}
    assert len({mixed.reset(seed=s)[1]["task"]["family"] for s in range(60)}) == len(FAMILIES)


def test_bad_arguments_fail_loudly():
    for kwargs, word in [({"families": ["sudoku"]}, "families"), ({"difficulty": 0}, "difficulty"),
                         ({"reward_mode": "strict"}, "reward_mode"), ({"image_size": 4}, "image_size"),
                         ({"split": "dev"}, "split")]:
        with pytest.raises(ValueError, match=word):
            gym.make("LMMR1/VisualMath-v0", **kwargs)
    with pytest.raises(ValueError, match="'family' and 'params'"):
        gym.make("LMMR1/VisualMath-v0").reset(seed=0, options={"task": {"problem": "?", "answer": "1"}})


def test_lmmr1_mode_reads_boxed_answers():
    env = gym.make("LMMR1/VisualMath-v0", reward_mode="lmmr1", families=["circles"])
    _, info = env.reset(seed=2)
    _, reward, *_ = env.step(f"<think>so the answer is $\\boxed{{{info['answer']}}}$</think><answer>"
                             f"$\\boxed{{{info['answer']}}}$</answer>")
    assert reward == 1.5


# ---- datasets with images ----

def _png(path, size=(40, 30), colour=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def _message_row(image_ref, text="How many degrees?", answer="$\\boxed{60}$", **extra):
    chat = [{"role": "user", "content": [{"type": "image", "image": image_ref}, {"type": "text", "text": text}]}]
    return {"message": json.dumps(chat), "answer": answer, **extra}


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_message_rows_with_relative_absolute_and_file_url_images(tmp_path):
    red = _png(tmp_path / "figs" / "red.png", colour=(220, 0, 0))
    green = _png(tmp_path / "elsewhere" / "green.png", colour=(0, 200, 0))
    blue = _png(tmp_path / "blue.png", colour=(0, 0, 230))
    path = _write_jsonl(tmp_path / "data.jsonl", [
        _message_row("figs/red.png"), _message_row(str(green), answer="B"), _message_row(blue.as_uri()),
        {"problem": "What is shown?", "answer": "7", "image": "figs/red.png"},
    ])
    env = gym.make("LMMR1/VisualMath-v0", dataset=str(path))
    centre = []
    for seed in range(4):
        obs, info = env.reset(seed=seed)
        centre.append(tuple(int(c) for c in obs["image"][224, 224]))
    assert centre == [(220, 0, 0), (0, 200, 0), (0, 0, 230), (220, 0, 0)]
    assert obs["text"] == "What is shown?" and info["task"]["image_file"] == str(red)
    env.reset(seed=1)
    assert env.step(_response("B"))[1] == 1.5
    obs, _ = env.reset(seed=0)
    assert obs["text"] == "How many degrees?" and env.step(_response("60"))[1] == 1.5


def test_list_dataset_resolves_against_the_working_directory(tmp_path, monkeypatch):
    _png(tmp_path / "a.png")
    monkeypatch.chdir(tmp_path)
    env = gym.make("LMMR1/VisualMath-v0", dataset=[{"question": "Colour?", "answer": "1", "images": ["a.png"]}])
    assert env.reset(seed=5)[0]["text"] == "Colour?"


def test_loaded_images_are_letterboxed_not_stretched(tmp_path):
    _png(tmp_path / "wide.png", size=(200, 100), colour=(10, 20, 30))
    row = {"problem": "?", "answer": "1", "image": str(tmp_path / "wide.png")}
    env = gym.make("LMMR1/VisualMath-v0", dataset=[row])
    image = env.reset(seed=0)[0]["image"]
    filled = (image != 255).any(axis=2)
    rows, cols = np.nonzero(filled)
    assert cols.min() == 0 and cols.max() == 447  # full width
    assert rows.min() == 112 and rows.max() == 335  # 224 px tall: aspect 2:1 kept, centred
    assert (image[:112] == 255).all() and (image[336:] == 255).all()


def test_split_field_is_honoured(tmp_path):
    _png(tmp_path / "a.png")
    rows = [_message_row("a.png", answer=str(i), split="test" if i % 3 == 0 else "train") for i in range(9)]
    path = _write_jsonl(tmp_path / "d.jsonl", rows)
    test_env = gym.make("LMMR1/VisualMath-v0", dataset=str(path), split="test")
    assert [r["answer"] for r in test_env.unwrapped.rows] == ["0", "3", "6"]
    assert len(gym.make("LMMR1/VisualMath-v0", dataset=str(path)).unwrapped.rows) == 6


@pytest.mark.parametrize("ref,message", [
    ("https://example.com/fig.png", "record 3 of data.jsonl: image 'https://example.com/fig.png' is a remote URL"),
    ("figs/3.png", "record 3 of data.jsonl: image 'figs/3.png' not found"),
    ("junk.png", "record 3 of data.jsonl: image 'junk.png' is not a readable image"),
    ("s3://bucket/a.png", "record 3 of data.jsonl: image 's3://bucket/a.png' is a remote URL"),
])
def test_bad_images_name_the_record(tmp_path, ref, message):
    _png(tmp_path / "ok.png")
    (tmp_path / "junk.png").write_bytes(b"this is not a PNG at all" * 10)
    path = _write_jsonl(tmp_path / "data.jsonl", [_message_row("ok.png"), _message_row("ok.png"), _message_row(ref)])
    with pytest.raises(DatasetError) as err:
        gym.make("LMMR1/VisualMath-v0", dataset=str(path))
    assert message in str(err.value)


@pytest.mark.parametrize("row,message", [
    ({"problem": "1+1", "answer": "2"}, "no 'image' field; use LMMR1/TextMath-v0"),
    ({"message": json.dumps([{"role": "user", "content": "text only"}]), "answer": "2"}, "has no image"),
    ({"problem": "?", "answer": "2", "image": ["a.png", "a.png"]}, "has 2 images"),
    ({"problem": "?", "answer": "2", "image": 7}, "must be a file path string"),
    ({"problem": "?", "image": "a.png"}, "no 'answer' field"),
])
def test_bad_rows_name_the_record(tmp_path, row, message):
    _png(tmp_path / "a.png")
    path = _write_jsonl(tmp_path / "rows.jsonl", [row])
    with pytest.raises(DatasetError, match=None) as err:
        gym.make("LMMR1/VisualMath-v0", dataset=str(path))
    assert "record 1 of rows.jsonl" in str(err.value) and message in str(err.value)


def test_render_task_is_the_observation(tmp_path):
    task = generate_task("train", 4, ("counting",), (2,))
    env = gym.make("LMMR1/VisualMath-v0", families=["counting"])
    assert np.array_equal(render_task(task, (448, 448)), env.reset(seed=4)[0]["image"])
