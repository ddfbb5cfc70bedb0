"""``python -m lmmr1_agent.align.report``: the README table and the curve PNG of an alignment.

Reads ``lmmr1_agent.evaluate`` outputs (one ``--output`` folder per model, every family as its own
``--env`` in the same order) and the shipped ``recipe.json``; writes ``table.md`` and ``curve.png``.
Accuracy is the env's own judge (``info["success"]``); chance is the accuracy of a blind constant guess
fitted to the training split: always the most common answer of 2,000 training problems of the family.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

from lmmr1_agent.align.data import reasoning
from lmmr1_agent.plots import share_curve
from lmmr1_agent.stats import mean_stderr
from lmmr1_env.tags import first_tag_body
from lmmr1_env.visualmath.env import generate_task

_NUMBER = re.compile(r"\d+")


def read_run(folder: Path) -> list[dict]:
    """Per env spec of an evaluate run: ``{"family", "episodes": [records]}`` (episodes.jsonl is in spec order)."""
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))["results"]
    records = [json.loads(line) for line in (folder / "episodes.jsonl").read_text(encoding="utf-8").splitlines()]
    out, start = [], 0
    for row in results:
        (family,) = row["kwargs"]["families"]
        out.append({"family": family, "difficulty": row["kwargs"].get("difficulty", 2),
                    "episodes": records[start:start + row["episodes"]]})
        start += row["episodes"]
    return out


def family_scores(run: dict, visual: str = "description") -> dict:
    """Accuracy, chance and accuracy of the ``<think>`` text against what the alignment taught (``visual``)."""
    episodes = run["episodes"]
    tasks = [generate_task("test", e["seed"], [run["family"]], [run["difficulty"]]) for e in episodes]
    n = len(episodes)
    accuracy, accuracy_se = mean_stderr([float(bool(e["success"])) for e in episodes])
    family, difficulty = [run["family"]], [run["difficulty"]]
    train = Counter(generate_task("train", seed, family, difficulty)["answer"] for seed in range(2000))
    guess = train.most_common(1)[0][0]
    chance, chance_se = mean_stderr([float(t["answer"] == guess) for t in tasks])
    distinct = len({(t["problem"], json.dumps(t["params"], sort_keys=True)) for t in tasks})
    exact = numbers = 0
    for episode, task in zip(episodes, tasks):
        gold = reasoning(task, visual)
        said = (first_tag_body(episode["turns"][0]["response"] or "", "think") or "").strip()
        exact += said == gold
        numbers += bool(said) and _NUMBER.findall(said) == _NUMBER.findall(gold)
    return {"n": n, "distinct": distinct, "accuracy": accuracy, "accuracy_se": accuracy_se, "chance": chance,
            "chance_se": chance_se, "description_exact": exact / n,
            "numbers_right": numbers / n}


def markdown_table(random_runs: list[dict], aligned_runs: list[dict], visual: str = "description") -> str:
    """The README table: per family, random-tower and aligned accuracy ± SE, chance, description accuracy."""
    lines = ["| family | episodes (distinct problems) | chance | random tower | aligned | (aligned − chance) / SE | "
             "description exact | numbers read right |", "|---|---|---|---|---|---|---|---|"]
    for blind, seeing in zip(random_runs, aligned_runs):
        if blind["family"] != seeing["family"]:
            raise ValueError(f"runs list families in different orders: {blind['family']} vs {seeing['family']}")
        b, a = family_scores(blind, visual), family_scores(seeing, visual)
        se = a["accuracy_se"]
        # An accuracy of 0 or 1 has no spread of its own: measure its distance in chance's standard errors.
        scale = se if se > 0 else a["chance_se"]
        margin = (a["accuracy"] - a["chance"]) / scale if scale > 0 else 0.0
        lines.append(f"| {seeing['family']} | {a['n']} ({a['distinct']}) | {a['chance']:.0%} | {b['accuracy']:.0%} ± "
                     f"{b['accuracy_se']:.0%} | {a['accuracy']:.0%} ± {se:.0%} | {margin:+.1f} | "
                     f"{a['description_exact']:.0%} | {a['numbers_right']:.0%} |")
    return "\n".join(lines)


def _total_minutes(recipe: dict) -> float:
    """Wall-clock minutes of the run that wrote ``recipe`` and of every run it continued."""
    earlier = (recipe.get("continues") or {}).get("recipe")
    return recipe["seconds"] / 60 + (_total_minutes(earlier) if earlier else 0.0)


def recipe_curve(recipe: dict) -> list[dict]:
    """Every held-out evaluation of the runs that made the weights, oldest first: a run started with
    ``--init-weights`` follows the run it continued (``recipe["continues"]``), its minutes counted on from there."""
    earlier = (recipe.get("continues") or {}).get("recipe")
    if not earlier:
        return list(recipe["curve"])
    offset = _total_minutes(earlier)
    return recipe_curve(earlier) + [{**p, "minutes": round(p["minutes"] + offset, 2)} for p in recipe["curve"]]


def recipe_series(recipe: dict) -> dict[str, list[tuple[float, float]]]:
    """The shipped weights' held-out curve against wall-clock minutes: per phase-1 family, the share of figures
    whose every label was read right; then phase 2's teacher-forced answers, and the text rehearsal's worked
    solutions where it ran."""
    curve = recipe_curve(recipe)
    phase1 = [p for p in curve if p["phase"] == "labels"]
    families = [f for f in (phase1[0]["held_out_labels_right"]["figures"] if phase1 else {}) if f != "all"]
    series = {f"1: {family}": [(p["minutes"], p["held_out_labels_right"]["figures"][family]) for p in phase1]
              for family in families}
    series["2: answers right (TF)"] = [(p["minutes"], p["held_out_answer_right"]) for p in curve
                                       if p["phase"] == "language"]
    text = [(p["minutes"], p["held_out_text_response_right"]) for p in curve if "held_out_text_response_right" in p]
    if text:
        series["2: worked text solutions right (TF)"] = text
    return series


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lmmr1_agent.align.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--random", type=Path, required=True, help="evaluate --output folder of embedded-vl-random")
    parser.add_argument("--aligned", type=Path, required=True, help="evaluate --output folder of embedded-vl")
    parser.add_argument("--recipe", type=Path, help="recipe.json of the aligned weights (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=Path("docs/alignment"), help="folder for table.md and curve.png")
    args = parser.parse_args(argv)
    for folder in (args.random, args.aligned):
        if not (folder / "results.json").is_file():
            raise SystemExit(f"{folder}: no results.json (run python -m lmmr1_agent.evaluate --output {folder})")
    from lmmr1_agent.models.embedded import VLM_RECIPE

    recipe = json.loads((args.recipe or VLM_RECIPE).read_text(encoding="utf-8"))
    table = markdown_table(read_run(args.random), read_run(args.aligned),
                           recipe["config"].get("visual_targets", "description"))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(table + "\n", encoding="utf-8")
    share_curve(args.out / "curve.png", "alignment: held-out accuracy vs training minutes", recipe_series(recipe),
                "minutes (wall clock, 2 CPU cores)")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
