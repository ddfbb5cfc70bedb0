"""The comparison sweep (``python -m lmmr1_agent.experiments``): every shipped arm on a tiny VLM, one step per stage,
resumed without retraining, one table and plot; its statistics; clear errors for bad sweep files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lmmr1_agent.experiments import judge_claim, load_sweep, main
from lmmr1_agent.stats import seeds_mean_stderr
from lmmr1_agent.train import default_config
from tests.tiny_models import build_fastvlm, build_llama

ARMS = ["base", "fre_text", "fre_multi", "direct_rl", "fre_text_mgt", "fre_mgt_sokoban"]
TINY = ["num_steps=1", "eval_prompts=2", "rollout_batch_size=2", "n_samples_per_prompt=4", "train_batch_size=8",
        "micro_train_batch_size=8", "generate_max_len=8", "save_every=1", "threads=1"]


def tiny_sweep(folder: Path) -> Path:
    """The shipped sweep's arms beside a copy of its sweep file whose evaluation answers in 8 tokens and plays
    3 Football turns, so that a tiny model runs it in seconds."""
    shipped = Path(default_config("experiments/sweep")).parent
    folder.mkdir()
    for arm in shipped.glob("*.yaml"):
        (folder / arm.name).write_text(arm.read_text())
    sweep = (folder / "sweep.yaml").read_text().replace("max_new_tokens: 64", "max_new_tokens: 8")
    (folder / "sweep.yaml").write_text(sweep.replace("max_turns: 10 ", "max_turns: 3 "))
    return folder / "sweep.yaml"


def sweep_args(sweep: Path, model: Path, out: Path) -> list[str]:
    sets = [arg for setting in [f"model={model}", *TINY] for arg in ("--set", setting)]
    return ["--sweep", str(sweep), "--output-dir", str(out), "--seeds", "0", "--episodes", "2", "--no-progress",
            *sets]


def test_the_shipped_sweep_runs_every_arm_once_and_resumes_without_retraining(tmp_path, capsys):
    # the tiny tokenizer spends many tokens on the Football panel and the demonstration: a longer context
    model = build_fastvlm(tmp_path / "tiny-vl", build_llama(tmp_path / "tiny-llama", max_positions=8192))
    out, sweep = tmp_path / "sweep", tiny_sweep(tmp_path / "configs")
    assert "max_turns: 3 " in sweep.read_text()
    # one arm: the arm it comes after is trained for it, not evaluated
    assert main([*sweep_args(sweep, model, out), "--arms", "fre_text_mgt"]) == 0
    assert (out / "fre_text" / "seed_0" / "fre" / "final").is_dir()
    assert not (out / "fre_text" / "seed_0" / "results.json").exists()
    assert "| FRE-Text → MGT | 1 |" in capsys.readouterr().out
    assert main(sweep_args(sweep, model, out)) == 0
    printed = capsys.readouterr()
    assert "arm fre_text seed 0" in printed.err and "stage fre already finished" in printed.err
    assert sorted(p.parent.parent.name for p in out.glob("*/seed_*/results.json")) == sorted(ARMS)
    assert (out / "base" / "seed_all" / "results.json").is_file()  # no training: evaluated once, whatever the seed
    # FRE-Text → MGT starts from FRE-Text's result of the same seed, and trains only its MGT stage
    mgt = json.loads((out / "fre_text_mgt" / "seed_0" / "mgt" / "final" / "summary.json").read_text())
    assert mgt["start"] == str(out / "fre_text" / "seed_0" / "fre" / "final")
    assert not (out / "fre_text_mgt" / "seed_0" / "fre").exists()
    sokoban = json.loads((out / "fre_mgt_sokoban" / "seed_0" / "mgt" / "final" / "summary.json").read_text())
    assert sokoban["config"]["envs"][0]["id"] == "LMMR1/Sokoban-v0"
    direct = json.loads((out / "direct_rl" / "seed_0" / "mgt" / "final" / "summary.json").read_text())
    assert direct["start"] == str(model)
    record = json.loads((out / "fre_text" / "seed_0" / "results.json").read_text())
    assert set(record["envs"]) == {"TextMath", "VisualMath", "Sokoban", "Football"}
    assert all(len(env["return"]) == 2 for env in record["envs"].values())
    assert len(record["envs"]["Sokoban"]["info"]["magebench_score"]) == 2
    table = (out / "results.md").read_text()
    assert table in printed.out
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    header = rows[0]
    for column in ("TextMath accuracy %", "VisualMath accuracy %", "Sokoban score", "Sokoban solved %",
                   "Football return"):
        assert column in header
    assert [r.split(" | ")[0][2:] for r in rows[1:7]] == [
        "base", "FRE-Text", "FRE-Multi", "Direct-RL", "FRE-Text → MGT", "FRE-Text → MGT-Sokoban"]
    families = table.split("\n\n")[1].splitlines()[0]  # the per-family table: VisualMath's families only
    assert families.startswith("| arm | VisualMath ") and "TextMath" not in families
    assert (out / "results.png").stat().st_size > 10_000
    claims = table.split("\n\n")[2].splitlines()  # the paper's claims, each judged by its paired difference
    assert claims[0].startswith("| claim (LMM-R1) |") and len(claims) == 2 + 7
    assert all(line.rsplit(" | ", 1)[1] in ("held |", "reversed |", "not shown |") for line in claims[2:])
    summary = json.loads((out / "results.json").read_text())
    assert summary["arms"]["fre_text"]["seeds"] == [0] and summary["arms"]["base"]["seeds"] == [None]

    # a rerun trains and evaluates nothing; a lost result is evaluated again without retraining its stages
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/seed_*/**/metrics.jsonl")}
    (out / "direct_rl" / "seed_0" / "results.json").unlink()
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/seed_*/results.json")}
    assert main(sweep_args(sweep, model, out)) == 0
    err = capsys.readouterr().err
    assert "arm direct_rl seed 0" in err and "arm fre_text seed 0" not in err
    assert "stage mgt already finished" in err
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    assert (out / "direct_rl" / "seed_0" / "results.json").is_file()
    # the plan names what a run would skip, and an arm without training once
    assert main([*sweep_args(sweep, model, out), "--seeds", "0", "1", "--check"]) == 0
    plan = capsys.readouterr().out.splitlines()
    assert "direct_rl seed 0: mgt (1 steps, LMMR1/VisualMath-v0) [done: skipped]" in plan
    assert "direct_rl seed 1: mgt (1 steps, LMMR1/VisualMath-v0)" in plan
    assert [line for line in plan if line.startswith("base")] == [f"base (every seed): evaluate {model} "
                                                                   "[done: skipped]"]


def test_the_standard_error_spans_seeds_and_the_shared_test_problems():
    mean, se, seeds = seeds_mean_stderr([[1.0, 0.0], [1.0, 1.0]])
    assert (mean, seeds) == (0.75, 2)
    # seed means 0.5 and 1.0 (variance 0.125), episode means over the seeds 1.0 and 0.5 (variance 0.125):
    # se² = 0.125 / 2 + 0.125 / 2
    assert se == pytest.approx(math.sqrt(0.125))
    one_seed = seeds_mean_stderr([[1.0, 0.0, 1.0, 0.0]])  # one seed: the episodes' standard error only
    assert one_seed[1] == pytest.approx(math.sqrt(1 / 3 / 4))
    # seeds that play the same problems alike: more seeds do not shrink the test problems' noise
    assert seeds_mean_stderr([[1.0, 0.0, 1.0, 0.0]] * 3)[1] == pytest.approx(one_seed[1])
    # unpaired seeds (other episode counts): each seed's episodes are their own sample
    unpaired = seeds_mean_stderr([[1.0, 0.0, 1.0, 0.0], [1.0, 0.0]])
    assert unpaired[1] == pytest.approx(math.sqrt((1 / 3 / 4 + 1 / 2 / 2) / 2 / 2))
    assert math.isnan(seeds_mean_stderr([[], []])[0])


def test_the_shipped_sweeps_load_and_the_paper_sweep_names_its_missing_data(capsys):
    sweep = load_sweep(default_config("experiments/sweep"))
    assert list(sweep.arms) == ARMS and sweep.seeds == [0, 1, 2]
    assert sweep.arms["fre_text_mgt"].after == "fre_text"
    with pytest.raises(SystemExit) as exit_info:
        main(["--sweep", str(default_config("experiments/paper/sweep")), "--table-only"])
    assert exit_info.value.code == 2
    assert "data/math500_test.jsonl' not found" in capsys.readouterr().err


def test_the_paper_sweep_checks_with_its_data_files_in_place(tmp_path, monkeypatch, capsys):
    """Every paper arm resolves once the files it names exist (two-row stand-ins here), the MGT arms starting from
    FRE-Text's result of the same seed, not the preset's own path."""
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    Image.new("RGB", (64, 48), "white").save(tmp_path / "data" / "figure.png")
    for name in ("deepscaler_40k", "vermulti_65k", "vermulti_geo_15k", "math500_test", "mathvision_test"):
        image = [{"type": "image", "image": "figure.png"}] if "vermulti" in name or "vision" in name else []
        rows = [{"message": json.dumps([{"role": "user", "content": [*image, {"type": "text", "text": q}]}]),
                 "answer": a} for q, a in (("What is 2 + 3?", "$5$"), ("What is 4 + 4?", "$8$"))]
        (tmp_path / "data" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["--sweep", str(default_config("experiments/paper/sweep")), "--check"]) == 0
    plan = capsys.readouterr().out
    assert "fre_text_mgt_geo seed 0: after fre_text: mgt (117 steps, LMMR1/VisualMath-v0)" in plan
    assert "base (every seed): evaluate Qwen/Qwen2.5-VL-3B-Instruct" in plan and "[done" not in plan
    assert not (tmp_path / "runs" / "experiments" / "fre_text").exists()  # nothing trained


@pytest.mark.parametrize("arm, message", [
    ("stages:\n  - {config: fre, num_step: 3}\n", "stages[0]: unknown config key 'num_step'"),
    ("stages:\n  - {config: nowhere}\n", "stage config 'nowhere': neither a shipped config"),
    ("title: x\n", "an arm without stages evaluates a model"),
    ("after: missing\nstages:\n  - {config: fre}\n", "after 'missing', which is not an arm"),
    ("modle: embedded-vl\n", "unknown key 'modle'"),
])
def test_a_bad_arm_file_is_one_line_naming_it(tmp_path, capsys, arm, message):
    shipped = Path(default_config("experiments/sweep")).read_text()
    (tmp_path / "sweep.yaml").write_text(shipped.replace(
        "arms: [base, fre_text, fre_multi, direct_rl, fre_text_mgt, fre_mgt_sokoban]", "arms: [bad]"))
    (tmp_path / "bad.yaml").write_text(arm)
    with pytest.raises(SystemExit) as exit_info:
        main(["--sweep", str(tmp_path / "sweep.yaml"), "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_claim_is_judged_on_the_same_problems_seed_by_seed(tmp_path):
    """arm − baseline is paired problem by problem (a baseline evaluated once pairs with every seed); more than
    2 SE in the expected direction holds, the other way is reversed."""
    sweep = load_sweep(default_config("experiments/sweep"))

    def record(arm: str, seed: int | None, success: list[float]) -> None:
        folder = tmp_path / arm / (f"seed_{seed}" if seed is not None else "seed_all")
        folder.mkdir(parents=True)
        env = {"return": success, "success": success, "family": [None] * len(success), "info": {}}
        (folder / "results.json").write_text(json.dumps({"seed": seed, "envs": {"TextMath": env}}))

    record("base", None, [1.0, 0.0] * 4)
    record("fre_text", 0, [1.0] * 8)
    record("fre_text", 1, [1.0] * 7 + [0.0])
    claim = {"claim": "lifts text", "arm": "fre_text", "baseline": "base", "metric": "TextMath accuracy"}
    judged = judge_claim(sweep, tmp_path, claim)
    # differences [0, 1] * 4 and [0, 1, 0, 1, 0, 1, 0, 0]: seed means 0.5, 0.375; problem means [0, 1, ..., 0, 0.5]
    problems = [0.0, 1.0] * 3 + [0.0, 0.5]
    seed_part = (2 * 0.0625**2) / 2  # variance of the seed means (n - 1 = 1) over 2 seeds
    expected = math.sqrt(seed_part + seeds_mean_stderr([problems])[1] ** 2)
    assert judged["difference"] == pytest.approx(0.4375) and judged["se"] == pytest.approx(expected)
    assert judged["seeds"] == 2 and judged["verdict"] == "held"
    assert judge_claim(sweep, tmp_path, {**claim, "expect": "lower"})["verdict"] == "reversed"
    assert judge_claim(sweep, tmp_path, {**claim, "arm": "direct_rl"})["verdict"] == "no results"


def test_a_bad_claim_is_one_line_naming_it(tmp_path, capsys):
    shipped = Path(default_config("experiments/sweep"))
    for arm in shipped.parent.glob("*.yaml"):
        (tmp_path / arm.name).write_text(arm.read_text())
    (tmp_path / "sweep.yaml").write_text(shipped.read_text().replace("metric: TextMath accuracy}",
                                                                     "metric: TextMath accuracyy}", 1))
    with pytest.raises(SystemExit):
        main(["--sweep", str(tmp_path / "sweep.yaml"), "--check"])
    err = capsys.readouterr().err
    assert "claims[0]: metric 'TextMath accuracyy' is not a column (TextMath accuracy, VisualMath accuracy" in err


def test_an_unknown_arm_or_set_key_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--arms", "fre_text", "fre_textt", "--table-only"])
    assert "--arms fre_textt: not an arm" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--set", "learning_rate=1e-5"])
    assert "give KEY=VALUE with a stage config key" in capsys.readouterr().err
