"""``python -m lmmr1_agent.experiments``: LMM-R1's comparison, arm by arm and seed by seed, in one table and one plot.

    python -m lmmr1_agent.experiments                              # every arm of configs/experiments/sweep.yaml
    python -m lmmr1_agent.experiments --arms direct_rl fre_text_mgt --seeds 0 1
    python -m lmmr1_agent.experiments --sweep configs/experiments/paper/sweep.yaml   # the paper's presets (GPUs)

A sweep file names its arms (one YAML file each, beside it), the seeds, and the evaluation every arm's result plays.
An arm is a list of stages, each a stage config (``config: fre`` names a shipped one, ``config: paper/fre_text`` a
paper preset, anything else a path) with keys that override it; ``after: ARM`` starts the arm's first stage from that
arm's result of the same seed (trained first, once, and shared). Arm A's seed k lives in ``--output-dir``/A/seed_k:
its stages as ``lmmr1_agent.train`` writes them, then ``results.json`` once evaluated. Running the command again
skips every arm and seed that has its results and resumes a killed stage from its last checkpoint; the table
(``results.md``, ``results.json``) and the plot (``results.png``) always cover every result there.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lmmr1_agent.cli import ArgumentParser, ConfigError, check_env, check_output_dir
from lmmr1_agent.learner.config import FIELDS, load_yaml, read_mapping, resolve
from lmmr1_agent.stats import seeds_mean_stderr

RESULTS = "results.json"
#: A sweep file's keys and an evaluation's; unknown keys are errors.
SWEEP_KEYS = {"arms", "seeds", "evaluation", "claims"}
CLAIM_KEYS = {"claim", "arm", "baseline", "metric", "expect"}
EVALUATION_KEYS = {"envs", "temperature", "max_new_tokens", "batch_size", "seed", "demonstration"}
EVAL_ENV_KEYS = {"name", "id", "kwargs", "episodes", "metrics", "max_turns"}
ARM_KEYS = {"title", "description", "model", "after", "stages"}


@dataclass
class Arm:
    """One arm of the comparison: its stages (stage-config keys, each with the ``config`` it starts from)."""

    name: str
    title: str
    description: str
    model: str | None
    after: str | None
    stages: list[dict[str, Any]]


@dataclass
class Sweep:
    """A sweep file: its arms in table order, the default seeds, and the evaluation."""

    path: Path
    arms: dict[str, Arm]
    seeds: list[int]
    evaluation: dict[str, Any]
    #: The paper's claims as differences to test: ``{"claim", "arm", "baseline", "metric", "expect"}`` each.
    claims: list[dict[str, str]]


def _unknown(data: dict, known: set[str], where: str) -> None:
    extra = sorted(set(data) - known)
    if extra:
        raise ConfigError(f"{where}: unknown key {extra[0]!r} (known: {', '.join(sorted(known))})")


def stage_config_path(name: str, relative_to: Path) -> Path:
    """A stage's ``config``: a shipped config (``fre``, ``mgt``, ``paper/fre_text``) or a YAML path (relative to the
    arm file's folder, else to the working folder)."""
    from lmmr1_agent.train import default_config

    shipped = default_config(name)
    if not name.endswith((".yaml", ".yml")) and shipped.is_file():
        return shipped
    for candidate in (relative_to / name, Path(name)):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"stage config {name!r}: neither a shipped config (fre, mgt, paper/...) nor a file")


def load_sweep(path: Path) -> Sweep:
    """Read a sweep file and its arms; a ConfigError names the file and key at fault."""
    data = read_mapping(path)
    _unknown(data, SWEEP_KEYS, str(path))
    names, seeds, evaluation = data.get("arms") or [], data.get("seeds", [0]), data.get("evaluation") or {}
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{path}: arms must be a list of arm names (files beside it)")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError(f"{path}: seeds must be a list of non-negative integers")
    arms = {name: load_arm(path.parent / f"{name}.yaml") for name in names}
    for arm in arms.values():
        if arm.after and arm.after not in arms:
            raise ConfigError(f"arm {arm.name}: after {arm.after!r}, which is not an arm of {path}")
    _check_evaluation(evaluation, path)
    claims = data.get("claims") or []
    _check_claims(claims, arms, evaluation, path)
    return Sweep(path, arms, seeds, evaluation, claims)


def load_arm(path: Path) -> Arm:
    """One arm file; every stage's keys are checked as the stage config's own (unknown keys are errors)."""
    data = read_mapping(path)
    _unknown(data, ARM_KEYS, str(path))
    stages = data.get("stages") or []
    if not isinstance(stages, list) or not all(isinstance(s, dict) and "config" in s for s in stages):
        raise ConfigError(f"{path}: stages must be a list of mappings, each with a config")
    if not stages and not data.get("model"):
        raise ConfigError(f"{path}: an arm without stages evaluates a model: name it with model")
    for i, stage in enumerate(stages):
        unknown = sorted(set(stage) - set(FIELDS) - {"config"})
        if unknown:
            raise ConfigError(f"{path}: stages[{i}]: unknown config key {unknown[0]!r}")
        stage_config_path(stage["config"], path.parent)
    return Arm(path.stem, str(data.get("title", path.stem)), str(data.get("description", "")), data.get("model"),
               data.get("after"), stages)


def _entries(items: list, required: tuple[str, ...], known: set[str], where: str):
    """``(place, mapping)`` for each entry of a list of mappings that has the ``required`` keys and no unknown one."""
    for i, item in enumerate(items):
        place = f"{where}[{i}]"
        if not isinstance(item, dict) or not set(required) <= set(item):
            raise ConfigError(f"{place} needs {', '.join(required[:-1])} and {required[-1]}")
        _unknown(item, known, place)
        yield place, item


def _check_evaluation(evaluation: dict, path: Path) -> None:
    _unknown(evaluation, EVALUATION_KEYS, f"{path}: evaluation")
    envs = evaluation.get("envs")
    if not isinstance(envs, list) or not envs:
        raise ConfigError(f"{path}: evaluation.envs must list the environments every arm's result plays")
    for where, env in _entries(envs, ("name", "id", "episodes", "metrics"), EVAL_ENV_KEYS, f"{path}: evaluation.envs"):
        for key in ("episodes", "max_turns"):
            if key in env and (not isinstance(env[key], int) or env[key] < 1):
                raise ConfigError(f"{where}: {key} must be a positive integer")
        if not isinstance(env["metrics"], dict) or not env["metrics"]:
            raise ConfigError(f"{where}: metrics must map a column name to return, success or an info key")
        check_env(env["id"], {"split": "test", **env.get("kwargs", {})}, where)


def _check_claims(claims: Any, arms: dict[str, Arm], evaluation: dict, path: Path) -> None:
    columns = [f"{env['name']} {column}" for env in evaluation["envs"] for column in env["metrics"]]
    if not isinstance(claims, list):
        raise ConfigError(f"{path}: claims must be a list of {{claim, arm, baseline, metric, expect}}")
    for where, claim in _entries(claims, ("claim", "arm", "baseline", "metric"), CLAIM_KEYS, f"{path}: claims"):
        for key in ("arm", "baseline"):
            if claim[key] not in arms:
                raise ConfigError(f"{where}: {key} {claim[key]!r} is not an arm ({', '.join(arms)})")
        if claim["metric"] not in columns:
            raise ConfigError(f"{where}: metric {claim['metric']!r} is not a column ({', '.join(columns)})")
        if claim.get("expect", "higher") not in ("higher", "lower"):
            raise ConfigError(f"{where}: expect must be higher or lower, got {claim['expect']!r}")


# ---- one arm, one seed ----


def arm_dir(output: Path, arm: str, seed: int, trained: bool = True) -> Path:
    """Where an arm's seed lives; an arm with no stages does not depend on the seed and lives in ``seed_all``."""
    return output / arm / (f"seed_{seed}" if trained else "seed_all")


def stage_configs(arm: Arm, seed: int, output: Path, overrides: dict[str, Any], sweep: Sweep, *,
                  check_only: bool = False) -> list:
    """The arm's resolved stage configs for ``seed``: each stage's file < the arm's keys < ``overrides`` (``--set``),
    with this arm's run folder and seed. After ``after``, the first stage starts from that arm's result (MGT as
    Direct-RL does, from the given model); with ``check_only``, which checks every key before anything trains, from
    the model that result is trained from, as the result itself may not exist yet."""
    configs, folder = [], arm_dir(output, arm.name, seed)
    for i, stage in enumerate(arm.stages):
        values = {**load_yaml(stage_config_path(stage["config"], sweep.path.parent)),
                  **{k: v for k, v in stage.items() if k != "config"}, **overrides,
                  "output_dir": str(folder), "seed": seed}
        if i == 0 and arm.after:
            previous = sweep.arms[arm.after]
            values["from_base"] = True  # MGT starts from ``model`` itself, not this folder's fre/final
            if not check_only:
                values["model"] = result_model(previous, seed, output, sweep)
            elif previous.stages:  # the model that result will have been trained from, which exists
                values["model"] = stage_configs(previous, seed, output, overrides, sweep, check_only=True)[0].model
        configs.append(resolve(values, {}))
    return configs


def result_model(arm: Arm, seed: int, output: Path, sweep: Sweep) -> str:
    """The model an arm ends with: its last stage's ``final`` folder, or the arm's ``model`` when it has no stages."""
    if not arm.stages:
        return str(arm.model)
    last = arm.stages[-1]
    stage = last.get("stage") or load_yaml(stage_config_path(last["config"], sweep.path.parent)).get("stage", "fre")
    return str(arm_dir(output, arm.name, seed) / stage / "final")


def evaluate_model(model: str, evaluation: dict[str, Any]) -> dict[str, Any]:
    """Play every evaluation env with ``model``; per env, each episode's return, success, family and the info keys
    its metrics read."""
    import gymnasium as gym

    from lmmr1_agent.agents import make_agent
    from lmmr1_agent.devices import resolve_device, resolve_dtype
    from lmmr1_agent.rollout import play_episodes

    device = resolve_device("auto")
    agent = make_agent(model, seed=int(evaluation.get("seed", 0)), temperature=float(evaluation.get("temperature", 0)),
                       max_new_tokens=int(evaluation.get("max_new_tokens", 64)),
                       demonstration=evaluation.get("demonstration"), device=device,
                       dtype=resolve_dtype("auto", device))
    out = {}
    try:
        for env in evaluation["envs"]:
            start = time.monotonic()
            seeds = range(int(evaluation.get("seed", 0)), int(evaluation.get("seed", 0)) + env["episodes"])
            make_env = functools.partial(gym.make, env["id"], **{"split": "test", **env.get("kwargs", {})})
            episodes = list(play_episodes(make_env, agent, list(seeds), env_id=env["id"],
                                          batch_size=int(evaluation.get("batch_size", 8)), history="auto",
                                          demonstration=evaluation.get("demonstration"),
                                          max_turns=int(env.get("max_turns", 1000))))
            keys = [source for source in env["metrics"].values() if source not in ("return", "success")]
            out[env["name"]] = {
                "return": [e.total_return for e in episodes], "success": [float(bool(e.success)) for e in episodes],
                "family": [e.final_info.get("family") for e in episodes],
                "info": {k: [e.final_info.get(k) for e in episodes] for k in keys},
                "seconds": time.monotonic() - start}
            print(f"[lmmr1]   {env['name']}: {len(episodes)} episodes in {out[env['name']]['seconds']:.1f} s",
                  file=sys.stderr)
    finally:
        agent.close()
    return out


def train_arm(sweep: Sweep, arm: Arm, seed: int, output: Path, overrides: dict[str, Any], progress: bool) -> None:
    """Train the arm's stages for ``seed`` (the ``after`` arm's first), each resumed or skipped as ``train`` does."""
    from lmmr1_agent.train import run_stage

    if arm.after:
        train_arm(sweep, sweep.arms[arm.after], seed, output, overrides, progress)
    for config in stage_configs(arm, seed, output, overrides, sweep):
        run_stage(config, progress=progress)


def run_arm(sweep: Sweep, arm: Arm, seed: int, output: Path, overrides: dict[str, Any], progress: bool) -> Path:
    """Train (or resume) the arm for ``seed`` and evaluate its result, unless its results exist."""
    folder = arm_dir(output, arm.name, seed, trained=bool(arm.stages))
    done = folder / RESULTS
    if done.is_file():
        return done
    stages = " → ".join(stage.get("stage") or str(stage["config"]) for stage in arm.stages)
    print(f"[lmmr1] arm {arm.name} seed {seed}: " + (stages or "evaluate only"), file=sys.stderr)
    start = time.monotonic()
    train_arm(sweep, arm, seed, output, overrides, progress)
    trained = time.monotonic()
    model = result_model(arm, seed, output, sweep) if arm.stages else str(overrides.get("model") or arm.model)
    envs = evaluate_model(model, sweep.evaluation)
    record = {"arm": arm.name, "title": arm.title, "seed": seed if arm.stages else None, "model": model,
              "train_seconds": trained - start, "evaluate_seconds": time.monotonic() - trained, "envs": envs}
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{RESULTS}.tmp"
    temporary.write_text(json.dumps(record) + "\n", encoding="utf-8")
    os.replace(temporary, done)  # a killed evaluation leaves no half-written results behind
    return done


# ---- the table ----


def _values(env: dict[str, Any], source: str) -> list[float]:
    raw = env[source] if source in ("return", "success") else env["info"].get(source, [])
    return [float(v) for v in raw if v is not None]


def _records(output: Path, arm: str) -> list[dict[str, Any]]:
    """The arm's ``results.json`` records, one per seed (one, ``seed_all``, for an arm evaluated once)."""
    return [json.loads(p.read_text()) for p in sorted((output / arm).glob(f"seed_*/{RESULTS}"))]


def summarize(sweep: Sweep, output: Path, arms: list[str]) -> dict[str, Any]:
    """Every metric of every arm over the seeds that have results, and the accuracy per family of each env whose
    episodes come from several families."""
    table: dict[str, Any] = {"columns": [], "families": {}, "arms": {}}
    for env in sweep.evaluation["envs"]:
        table["columns"] += [f"{env['name']} {column}" for column in env["metrics"]]
    for name in arms:
        records = _records(output, name)
        if not records:
            continue
        row = {"title": sweep.arms[name].title, "seeds": [r["seed"] for r in records], "metrics": {}, "families": {},
               "hours": sum(r["train_seconds"] + r["evaluate_seconds"] for r in records) / 3600}
        for env in sweep.evaluation["envs"]:
            runs = [r["envs"][env["name"]] for r in records if env["name"] in r["envs"]]
            for column, source in env["metrics"].items():
                row["metrics"][f"{env['name']} {column}"] = seeds_mean_stderr([_values(run, source) for run in runs])
            families = sorted({f for run in runs for f in run["family"] if f})
            for family in families if len(families) > 1 else ():  # one family is the env's own row
                row["families"][f"{env['name']} {family}"] = seeds_mean_stderr(
                    [[s for s, f in zip(run["success"], run["family"]) if f == family] for run in runs])
                table["families"].setdefault(f"{env['name']} {family}", None)
        table["arms"][name] = row
    table["families"] = sorted(table["families"])
    table["claims"] = [judge_claim(sweep, output, claim) for claim in sweep.claims]
    return table


def _episodes(sweep: Sweep, output: Path, arm: str, metric: str) -> dict[int | None, list[float]]:
    """One arm's values of a metric (``"TextMath accuracy"``) per seed (None: an arm evaluated once)."""
    env, column = next((e, c) for e in sweep.evaluation["envs"] for c in e["metrics"] if f"{e['name']} {c}" == metric)
    return {record["seed"]: _values(record["envs"][env["name"]], env["metrics"][column])
            for record in _records(output, arm) if env["name"] in record["envs"]}


def judge_claim(sweep: Sweep, output: Path, claim: dict[str, str]) -> dict[str, Any]:
    """A claim's difference, arm − baseline, paired problem by problem and seed by seed (a baseline evaluated once
    pairs with every seed), its standard error (:func:`seeds_mean_stderr`), and the verdict: ``held`` when it is
    more than 2 SE in the expected direction, ``reversed`` when more than 2 SE the other way, else ``not shown``."""
    arm, base = (_episodes(sweep, output, claim[key], claim["metric"]) for key in ("arm", "baseline"))
    pairs = [(values, base.get(seed, base.get(None))) for seed, values in arm.items()]
    diffs = [[a - b for a, b in zip(x, y)] for x, y in pairs if y is not None and len(x) == len(y)]
    mean, se, seeds = seeds_mean_stderr(diffs)
    sign = -1.0 if claim.get("expect") == "lower" else 1.0
    verdict = "no results" if not seeds else "held" if sign * mean > 2 * se else \
        "reversed" if sign * mean < -2 * se else "not shown"
    return {**claim, "difference": mean, "se": se, "seeds": seeds, "verdict": verdict}


def _cell(value: tuple[float, float, int] | None, scale: float) -> str:
    if not value or not value[2]:
        return "–"
    mean, se, _ = value
    return f"{mean * scale:.1f} ± {se * scale:.1f}"


def format_markdown(table: dict[str, Any], sweep: Sweep) -> str:
    """The results as Markdown: one row per arm (metrics in per cent where they are shares), then the accuracy per
    family."""
    shares = {f"{env['name']} {column}" for env in sweep.evaluation["envs"] for column, source in env["metrics"].items()
              if source == "success"}
    lines = ["| arm | seeds | " + " | ".join(c + (" %" if c in shares else "") for c in table["columns"]) + " |",
             "|---|---|" + "---|" * len(table["columns"])]
    for row in table["arms"].values():
        seeds = "–" if row["seeds"] == [None] else len(row["seeds"])
        lines.append(f"| {row['title']} | {seeds} | " + " | ".join(
            _cell(row["metrics"].get(c), 100 if c in shares else 1) for c in table["columns"]) + " |")
    if table["families"]:
        lines += ["", "| arm | " + " | ".join(f + " %" for f in table["families"]) + " |",
                  "|---|" + "---|" * len(table["families"])]
        for row in table["arms"].values():
            lines.append(f"| {row['title']} | " + " | ".join(_cell(row["families"].get(f), 100)
                                                             for f in table["families"]) + " |")
    if table["claims"]:
        lines += ["", "| claim (LMM-R1) | arm − baseline | metric | difference | seeds | verdict (2 SE) |",
                  "|---|---|---|---|---|---|"]
        for c in table["claims"]:
            scale = 100 if c["metric"] in shares else 1
            titles = " − ".join(table["arms"].get(c[k], {}).get("title", c[k]) for k in ("arm", "baseline"))
            difference = f"{c['difference'] * scale:+.1f} ± {c['se'] * scale:.1f}" if c["seeds"] else "–"
            lines.append(f"| {c['claim']} | {titles} | {c['metric']}{' %' if scale == 100 else ''} | {difference} | "
                         f"{c['seeds']} | {c['verdict']} |")
    return "\n".join(lines)


def write_results(sweep: Sweep, output: Path, arms: list[str]) -> str:
    """``results.json``, ``results.md`` and ``results.png`` in ``output`` for every arm that has results; returns
    the Markdown table."""
    from lmmr1_agent.plots import arm_bars

    table = summarize(sweep, output, arms)
    markdown = format_markdown(table, sweep)
    (output / "results.json").write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    (output / "results.md").write_text(markdown + "\n", encoding="utf-8")
    arm_bars(output / "results.png", "held-out results per arm (mean over seeds, ± 1 s.e.)",
             {c: {row["title"]: row["metrics"][c][:2] for row in table["arms"].values() if row["metrics"][c][2]}
              for c in table["columns"]})
    return markdown


# ---- the command ----


def _set_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or key not in FIELDS:
        raise argparse.ArgumentTypeError(f"{text!r}: give KEY=VALUE with a stage config key")
    return key, yaml.safe_load(value)


def build_parser() -> argparse.ArgumentParser:
    from lmmr1_agent.train import default_config

    parser = ArgumentParser(prog="python -m lmmr1_agent.experiments", description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", type=Path, default=default_config("experiments/sweep"),
                        help="sweep file (default: the shipped configs/experiments/sweep.yaml, sized for a CPU)")
    parser.add_argument("--arms", nargs="+", metavar="ARM", help="arms to run (default: all the sweep's)")
    parser.add_argument("--seeds", nargs="+", type=int, metavar="SEED", help="seeds (default: the sweep's)")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/experiments"),
                        help="where arms, seeds and the table go (default: runs/experiments)")
    parser.add_argument("--set", dest="overrides", action="append", type=_set_option, default=[], metavar="KEY=VALUE",
                        help="a stage config key for every stage of every arm (and model for arms without stages), "
                             "e.g. --set device=cuda; repeatable")
    parser.add_argument("--episodes", type=int, help="episodes per evaluation env (default: the sweep's)")
    parser.add_argument("--check", action="store_true", help="check every stage of every arm and the evaluation, "
                        "print the plan and exit (nothing trains)")
    parser.add_argument("--table-only", action="store_true", help="write the table and plot from existing results")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    from lmmr1_env.datasets import DatasetError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        sweep = load_sweep(args.sweep)
        arms = args.arms or list(sweep.arms)
        unknown = [a for a in arms if a not in sweep.arms]
        if unknown:
            raise ConfigError(f"--arms {unknown[0]}: not an arm of {args.sweep} ({', '.join(sweep.arms)})")
        if args.episodes is not None:
            if args.episodes < 1:
                raise ConfigError(f"--episodes must be at least 1, got {args.episodes}")
            for env in sweep.evaluation["envs"]:
                env["episodes"] = args.episodes
        overrides = dict(args.overrides)
        output = check_output_dir(args.output_dir, "--output-dir")
        seeds = args.seeds or sweep.seeds
        if not args.table_only:
            for seed in seeds:  # every stage of every arm is resolved and checked before the first one trains
                for name in arms:
                    arm = sweep.arms[name]
                    configs = stage_configs(arm, seed, output, overrides, sweep, check_only=True)
                    if args.check and (arm.stages or seed == seeds[0]):  # an arm without training runs once
                        done = (arm_dir(output, name, seed, bool(arm.stages)) / RESULTS).is_file()
                        print(f"{name} " + (f"seed {seed}" if arm.stages else "(every seed)") + ": " +
                              (f"after {arm.after}: " if arm.after else "") +
                              (" → ".join(f"{c.stage} ({c.num_steps} steps, {c.envs[0]['id']})" for c in configs)
                               or f"evaluate {overrides.get('model') or arm.model}") +
                              (" [done: skipped]" if done else ""))
            if args.check:
                return 0
            start = time.monotonic()
            for seed in seeds:
                for name in arms:
                    run_arm(sweep, sweep.arms[name], seed, output, overrides, progress=not args.no_progress)
            print(f"[lmmr1] sweep done in {(time.monotonic() - start) / 60:.1f} min", file=sys.stderr)
        print(write_results(sweep, output, list(sweep.arms)))  # every arm with results, not only those run now
    except (ConfigError, DatasetError) as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    print(f"table: {output / 'results.md'}  plot: {output / 'results.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
