"""``python -m lmmr1_agent.train``: LMM-R1's two stages, FRE (text RL) then MGT (multimodal RL).

    python -m lmmr1_agent.train                       # both stages with configs/fre.yaml and configs/mgt.yaml
    python -m lmmr1_agent.train --stage fre --lr 2e-5 --num-steps 60
    python -m lmmr1_agent.train --stage mgt --env 'LMMR1/Sokoban-v0:{"mode": "plan"}'

A run lives in ``--output-dir`` (default ``runs/default``): ``fre/`` and ``mgt/`` each hold numbered
checkpoints, ``metrics.jsonl``, ``reward_curve.png``, sample episodes and a ``final/`` model folder.
Rerunning the same command after a kill resumes from the last checkpoint; a finished stage is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from lmmr1_agent.learner.checkpoint import RunLock, latest_checkpoint, remove_stale_temporaries
from lmmr1_agent.learner.config import FIELDS, STAGES, ConfigError, StageConfig, add_arguments, load_yaml, resolve
from lmmr1_agent.learner.runner import paired_change, summarize_eval
from lmmr1_agent.learner.samples import episodes_to_samples
from lmmr1_agent.learner.workers import SUMMARY, LearnerDied, LocalWorkers, Workers
from lmmr1_agent.models.embedded import resolve_model
from lmmr1_agent.models.saving import save_model_folder
from lmmr1_agent.plots import reward_curve
from lmmr1_agent.report import write_report


def default_config(stage: str) -> Path:
    """The shipped YAML of a stage (``configs/<stage>.yaml``, installed as ``lmmr1_agent.configs``)."""
    return Path(str(resources.files("lmmr1_agent.configs").joinpath(f"{stage}.yaml")))


def mgt_start(config: StageConfig, run_dir: Path) -> str:
    """The model MGT starts from: FRE's result (a VL model already, or a text model grafted onto ``config.model``'s
    vision side), or with ``--from-base`` the base model itself (Direct-RL)."""
    if config.from_base:
        return resolve_model(config.model)
    fre_final = run_dir / "fre" / "final"
    if not (fre_final / SUMMARY).is_file():
        raise ConfigError(f"--stage mgt starts from the FRE result {fre_final}, which does not exist yet: run "
                          f"`python -m lmmr1_agent.train --stage fre --output-dir {run_dir}` first "
                          "(or pass --from-base for the Direct-RL baseline)")
    from transformers import AutoConfig

    from lmmr1_agent.agents.hf import is_vision_model

    if is_vision_model(AutoConfig.from_pretrained(fre_final)):
        return str(fre_final)  # FRE already trained a vision-language model
    target = run_dir / "mgt" / "init"
    if (target / "config.json").is_file():
        return str(target)
    model, tokenizer = graft_fre_result(fre_final, Path(resolve_model(config.model)), config.model)
    tmp = Path(tempfile.mkdtemp(prefix=".init-", dir=target.parent.mkdir(parents=True, exist_ok=True) or target.parent))
    save_model_folder(tmp, model, tokenizer)
    os.replace(tmp, target)
    return str(target)


def graft_fre_result(fre_final: Path, base: Path, name: str):
    """``(model, tokenizer)``: the text model FRE trained (any causal LM) inside the VL model ``base``, whose vision
    side (tower and projector or merger, aligned there if it was) is copied unchanged. FastVLM and Qwen2.5-VL bases
    are supported."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

    from lmmr1_agent.models.fastvlm import build_resnet_vlm
    from lmmr1_agent.models.graft import graft_into_qwen2_5_vl

    base_config = AutoConfig.from_pretrained(base)
    text_model = AutoModelForCausalLM.from_pretrained(fre_final, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(fre_final)
    kind = text_model.config.model_type
    if base_config.model_type == "fast_vlm":
        if not hasattr(base_config, "lmmr1_image_size") or base_config.vision_config.model_type != "resnet":
            raise ConfigError(f"mgt model {name}: a FastVLM not built by lmmr1 (ResNet tower) cannot take FRE's "
                              "text model; run FRE on the VL model itself (--stage fre --model " + name + ")")
        # Only the tower and projector carry over: a language update the base learned in its alignment is
        # replaced by FRE's language weights (the defaults run FRE on the VL model and keep it).
        print(f"[lmmr1] grafting FRE's text model ({kind}) into {name}: its vision side is kept, its language "
              "weights are FRE's", file=sys.stderr)
        try:
            model, tokenizer = build_resnet_vlm(text_model, tokenizer, image_size=base_config.lmmr1_image_size,
                                                tower=_resnet_shape(base_config.vision_config))
        except ValueError as exc:  # a text model it cannot hold
            raise ConfigError(f"mgt model {name}: {exc}") from None
        vision = ("model.vision_tower.", "model.multi_modal_projector.")
    elif base_config.model_type == "qwen2_5_vl":
        if kind != "llama":  # the graft zeroes the q/k/v biases Llama lacks, and has no home for other weights
            raise ConfigError(f"mgt model {name}: FRE's text model is a {kind!r} model; only a Llama-family one can "
                              "be grafted into Qwen2.5-VL (a FastVLM base, such as embedded-vl, takes any)")
        shape = {k: getattr(base_config.vision_config, k) for k in (
            "depth", "hidden_size", "num_heads", "intermediate_size", "patch_size", "spatial_merge_size",
            "temporal_patch_size", "window_size")}
        model, tokenizer = graft_into_qwen2_5_vl(text_model, tokenizer, vision=shape)
        vision = ("model.visual.",)
    else:
        raise ConfigError(f"mgt model {name} is a {base_config.model_type!r} model: FRE's text model can be grafted "
                          "into a FastVLM (embedded-vl) or Qwen2.5-VL model only; run FRE on the VL model itself "
                          "(--stage fre --model " + name + ")")
    base_state = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32).state_dict()
    own = {k: v for k, v in base_state.items() if k.startswith(vision)}
    try:
        missing, unexpected = model.load_state_dict(own, strict=False)
    except RuntimeError as exc:  # a size mismatch: the base's projector feeds another hidden size than FRE's model
        sizes = [" ".join(line.split()) for line in str(exc).splitlines() if "size mismatch" in line]
        raise ConfigError(f"mgt model {name}: its vision weights do not fit FRE's {kind} text model "
                          f"({(sizes or [str(exc)])[0]})") from None
    unexpected += [k for k in missing if k.startswith(vision)]  # a vision weight the base lacks stays random
    if unexpected or not own:
        raise ConfigError(f"mgt model {name}: its vision weights do not fit the grafted model ({unexpected[:3]})")
    return model, tokenizer


def _resnet_shape(vision_config) -> dict:
    return {"embedding_size": vision_config.embedding_size, "hidden_sizes": list(vision_config.hidden_sizes),
            "depths": list(vision_config.depths)}


def make_workers(config: StageConfig, model_path: str) -> Workers:
    """The stage's runner(s) and learner: in this process, or Ray actors when ``num_env_runners > 0``."""
    if config.num_env_runners:
        from lmmr1_agent.learner.ray_workers import RayWorkers

        return RayWorkers(config, model_path)
    return LocalWorkers(config, model_path)


def run_stage(config: StageConfig, *, progress: bool = True) -> dict[str, Any]:
    """Train one stage to completion (resuming if a checkpoint exists); returns its before/after summary."""
    run_dir = Path(config.output_dir)
    stage_dir = run_dir / config.stage
    final = stage_dir / "final"
    if (final / SUMMARY).is_file():
        print(f"[lmmr1] stage {config.stage} already finished: {final}", file=sys.stderr)
        return json.loads((final / SUMMARY).read_text())
    stage_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(run_dir):  # one writer per run folder; a second train on it is a one-line error
        for leftover in remove_stale_temporaries(stage_dir):
            print(f"[lmmr1] removed {leftover}, left by a killed run", file=sys.stderr)
        print(f"[lmmr1] {config.stage} config: {json.dumps(vars(config))}", file=sys.stderr)
        start = mgt_start(config, run_dir) if config.stage == "mgt" else resolve_model(config.model)
        resume = latest_checkpoint(stage_dir)
        threads = torch.get_num_threads()
        if config.threads:
            torch.set_num_threads(config.threads)
        try:
            workers = make_workers(config, str(resume or start))
            try:
                return _train(config, workers, stage_dir, start, resume, progress)
            finally:
                workers.close()
        finally:
            torch.set_num_threads(threads)


def _train(config: StageConfig, workers, stage_dir: Path, start: str, resume: Path | None,
           progress: bool) -> dict[str, Any]:
    metrics_path = stage_dir / "metrics.jsonl"
    if resume is not None:
        state = workers.restore(resume)
        first = state["step"]
        print(f"[lmmr1] resuming {config.stage} from {resume.name} (step {first})", file=sys.stderr)
        _truncate_metrics(metrics_path, first)
    else:
        first, state = 0, {"evals": [], "start": start}
        metrics_path.unlink(missing_ok=True)
    from torch.utils.tensorboard import SummaryWriter

    board = SummaryWriter(str(stage_dir / "tensorboard"), purge_step=first + 1 if first else None)
    if not first:
        state["evals"].append(_evaluate(workers, config, 0, board, stage_dir))
    bar = tqdm(range(first, config.num_steps), initial=first, total=config.num_steps, desc=config.stage,
               unit="step", disable=not progress, file=sys.stderr)
    for step in bar:
        # ---- rollout ----
        tick = time.monotonic()
        episodes, groups = workers.collect(step)
        samples = episodes_to_samples(episodes, groups)
        rollout_seconds = time.monotonic() - tick
        # ---- update (and the new weights to the runners) ----
        metrics = {**workers.collect_metrics, **workers.update(samples)}
        metrics.update(_rollout_metrics(episodes, samples))
        metrics.update({"step": step + 1, "perf/rollout_seconds": rollout_seconds,
                        "perf/step_seconds": time.monotonic() - tick})
        # ---- evaluate, log, checkpoint ----
        if config.eval_every and (step + 1) % config.eval_every == 0 and step + 1 < config.num_steps:
            state["evals"].append(_evaluate(workers, config, step + 1, board, stage_dir))
        with open(metrics_path, "a", encoding="utf-8") as log:
            log.write(json.dumps(metrics) + "\n")
        for name, value in metrics.items():
            if name != "step":
                board.add_scalar(name, value, step + 1)
        bar.set_postfix(reward=f"{metrics['rollout/reward']:.2f}", fmt=f"{metrics['rewards/format_rate']:.2f}",
                        kl=f"{metrics.get('losses/kl', 0):.3f}", len=f"{metrics['rollout/response_length']:.0f}",
                        s=f"{metrics['perf/step_seconds']:.0f}")
        if (step + 1) % config.save_every == 0 or step + 1 == config.num_steps:
            workers.save_checkpoint(stage_dir, step + 1, state)
    bar.close()
    state["evals"].append(_evaluate(workers, config, config.num_steps, board, stage_dir))
    board.close()
    summary = {"stage": config.stage, "start": state.get("start", start), "before": state["evals"][0],
               "after": state["evals"][-1], "evals": state["evals"], "config": vars(config)}
    _plot(stage_dir, config.stage, metrics_path, state["evals"])
    workers.save_final(stage_dir / "final", summary)
    return summary


def _evaluate(workers, config: StageConfig, step: int, board, stage_dir: Path) -> dict[str, Any]:
    """Held-out scores (to TensorBoard), every evaluated episode as JSONL and a few of them as an HTML page."""
    episodes = workers.evaluate(config.eval_prompts, config.eval_temperature)
    evaluation = {"step": step, **summarize_eval(episodes)}
    for name in ("reward", "format", "accuracy"):
        board.add_scalar(f"eval/{name}", evaluation[name], step)
    table = (f"held-out reward {evaluation['reward']:.3f} ± {evaluation['reward_se']:.3f}, format "
             f"{evaluation['format']:.3f}, accuracy {evaluation['accuracy']:.3f} (step {step})")
    families = evaluation["by_family"]
    if len(families) > 1:
        table += "\naccuracy by family: " + ", ".join(f"{name} {v['accuracy']:.2f} ({v['n']})"
                                                    for name, v in families.items())
    write_report(stage_dir / "samples" / f"eval_step_{step:06d}.html",
                 f"{config.stage}: held-out episodes at step {step}",
                 [{k: v for k, v in evaluation.items() if k != "outcomes"}], episodes[:16], table)
    (stage_dir / "samples" / f"eval_step_{step:06d}.jsonl").write_text(
        "".join(json.dumps(e.record()) + "\n" for e in episodes), encoding="utf-8")
    return evaluation


def _rollout_metrics(episodes, samples) -> dict[str, float]:
    terms = sorted({t for e in episodes for t in e.reward_terms})
    out = {"rollout/reward": float(np.mean([e.total_return for e in episodes])), "rollout/episodes": len(episodes),
           "rewards/format_rate": float(np.mean([e.reward_terms.get("format", 0.0) > 0 for e in episodes])),
           "rewards/accuracy": float(np.mean([bool(e.success) for e in episodes])),
           "rollout/response_length": float(np.mean([len(s.response_ids) for s in samples])) if samples else 0.0,
           "rollout/truncated_share": float(np.mean([s.truncated for s in samples])) if samples else 0.0,
           "rollout/parse_error_rate": float(np.mean([e.parse_errors > 0 for e in episodes]))}
    out.update({f"rewards/{t}": float(np.mean([e.reward_terms.get(t, 0.0) for e in episodes])) for t in terms})
    return out


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines written after the checkpoint we resume from (they will be written again)."""
    if path.is_file():
        kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept))


def _plot(stage_dir: Path, stage: str, metrics_path: Path, evals: list[dict]) -> None:
    lines = metrics_path.read_text().splitlines() if metrics_path.is_file() else []
    rows = [json.loads(line) for line in lines if line]
    reward_curve(stage_dir / "reward_curve.png", f"{stage}: training reward (rollouts) and held-out eval reward",
                 [r["step"] for r in rows], {"rollout reward": [r["rollout/reward"] for r in rows],
                                            "format rate": [r["rewards/format_rate"] for r in rows]},
                 [(e["step"], e["reward"], e["reward_se"]) for e in evals])


def format_summary(summaries: list[dict]) -> str:
    """The before/after table of every stage, with standard errors, and the paired change (after − before over
    the same held-out prompts and sampling noise, with the standard error of the per-prompt differences)."""
    lines = ["stage  when    reward          format          accuracy", "-----  ------  --------------  "
             "--------------  --------------"]
    for s in summaries:
        for when in ("before", "after"):
            e = s[when]
            lines.append(f"{s['stage']:<5}  {when:<6}  {e['reward']:.3f} ± {e['reward_se']:.3f}   "
                         f"{e['format']:.3f} ± {e['format_se']:.3f}   {e['accuracy']:.3f} ± {e['accuracy_se']:.3f}")
        changes = [paired_change(s["before"], s["after"], name) for name in ("reward", "format", "accuracy")]
        if all(changes):
            lines.append(f"{s['stage']:<5}  change  " + "   ".join(f"{d:+.3f} ± {se:.3f}" for d, se in changes))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from lmmr1_agent.cli import ArgumentParser  # one-line errors

    parser = ArgumentParser(prog="python -m lmmr1_agent.train", description=__doc__.split("\n\n")[0],
                            usage="python -m lmmr1_agent.train [--stage fre|mgt|all] [--config YAML] [...]",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=[*STAGES, "all"], default="all",
                        help="fre, mgt, or all (fre then mgt; the default)")
    parser.add_argument("--config", type=Path, help="YAML config (default: the shipped configs/<stage>.yaml)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    from lmmr1_agent.cli import check_output_dir
    from lmmr1_env.datasets import DatasetError

    parser = build_parser()
    args = parser.parse_args(argv)
    stages = list(STAGES) if args.stage == "all" else [args.stage]
    if args.config and len(stages) > 1:
        parser.error("--config names one stage's file: use it with --stage fre or --stage mgt")
    overrides = {k: v for k, v in vars(args).items() if k in FIELDS and k != "stage"}
    summaries = []
    try:
        # Every stage is resolved and checked (its envs built, its model and output folder found) before the first
        # one trains, so a bad MGT setting is not found after FRE's hour.
        configs = [resolve({**load_yaml(args.config or default_config(stage)), "stage": stage}, overrides)
                   for stage in stages]
        for config in configs:
            check_output_dir(config.output_dir, "--output-dir")
        for config in configs:
            summaries.append(run_stage(config, progress=not args.no_progress))
    except (ConfigError, DatasetError) as exc:  # a DatasetError here: a row that only fails when it is played
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    except LearnerDied as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    table = format_summary(summaries)
    print(table)
    out = Path(summaries[-1]["config"]["output_dir"]) if summaries else Path(".")
    (out / "summary.txt").write_text(table + "\n")
    return 0

if __name__ == "__main__":
    sys.exit(main())
