"""The alignment run of the embedded VLM: config, the two phases in one linear loop, resumable checkpoints, and
the shipped weights with their recipe."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from lmmr1_agent.align.data import FAMILY_NAMES, VISUAL_TARGETS, draw_rows, draw_text_rows
from lmmr1_agent.align.phases import (
    LabelHeads,
    SharedOpening,
    add_lora,
    center_image_tokens,
    figure_pixels,
    image_spread,
    image_tokens,
    label_accuracy,
    label_loss,
    language_batch,
    language_loss,
    load_lora_factors,
    lora_deltas,
    projector_parameters,
    recalibrate_batchnorm,
    train_only,
    vision_parameters,
)
from lmmr1_agent.cli import option
from lmmr1_agent.models.fastvlm import VISION_PREFIXES, load_vision_weights

#: Where the shipped aligned weights live inside the package.
VLM_DIR = Path(__file__).resolve().parents[1] / "models" / "vlm"
WEIGHTS_FILE = "weights.safetensors"
RECIPE_FILE = "recipe.json"
#: The run's resumable state, inside ``--output`` (removed when the run finishes).
STATE_DIR = ".align-state"
#: Seed offsets so the two phases, batch-norm recalibration and the held-out figures never share a draw.
_LANGUAGE_SEEDS = 10_000_000
_HELD_OUT_SEEDS = 20_000_000
_RECAL_SEEDS = 30_000_000
_TEXT_SEEDS = 40_000_000


def _difficulties(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v not in range(1, 6) for v in values):
        raise ValueError(f"--{name} must be numbers 1-5, got {text!r}")
    return values


def _ints(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--{name} must be comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"--{name} must be comma-separated numbers of at least 1, got {text!r}")
    return values


@dataclass
class AlignConfig:
    """Every setting of an alignment run (``python -m lmmr1_agent.align --help`` lists them)."""

    text_model: str = option("embedded", "language model to build the VLM around: 'embedded' "
                             "(SmolLM2-135M-Instruct) or a Llama folder")
    output: str = option(str(VLM_DIR), "folder for weights.safetensors and recipe.json")
    seed: int = option(0, "seeds the tower's initialisation and every figure drawn")
    families: str = option(",".join(FAMILY_NAMES), "comma-separated VisualMath families both phases draw figures "
                           "from; a family named twice is drawn twice as often")
    difficulties: str = option("1", "comma-separated difficulties to draw figures from")
    image_size: int = option(112, "figure side in pixels (a multiple of 16: the tower makes one image token per "
                             "16 × 16 cell)")
    tower_widths: str = option("64,128,256", "channels of the ResNet tower's three stages")
    tower_depths: str = option("1,1,2", "basic blocks per ResNet stage (three stages)")
    labels_steps: int = option(4500, "phase 1 steps (label heads, no language model)")
    labels_batch: int = option(32, "phase 1 figures per step")
    labels_lr: float = option(1e-3, "phase 1 peak learning rate (AdamW, cosine)")
    bn_recal: int = option(512, "training figures the tower's batch-norm statistics are recomputed on at each "
                           "phase-1 evaluation and after phase 1 (0: keep the running ones)")
    language_steps: int = option(600, "phase 2 steps (visual instruction tuning)")
    language_batch: int = option(8, "phase 2 prompts per step")
    language_lr: float = option(5e-4, "phase 2 peak learning rate (AdamW, cosine)")
    lora_rank: int = option(16, "rank of the LoRA factors on the language model (0: the language model stays "
                            "frozen, LLaVA stage 1 only)")
    lora_alpha: float = option(32.0, "LoRA scale numerator (update = alpha/rank · B A)")
    text_batch: int = option(0, "TextMath arithmetic problems with worked solutions beside the figures in each "
                             "phase 2 step: text rehearsal, as LLaVA-1.5 mixes text-only data into its second stage, "
                             "so the language model keeps its arithmetic and its answers follow its reasoning")
    text_difficulties: str = option("1,2", "comma-separated TextMath difficulties of the text rehearsal")
    visual_targets: str = option("description", "what phase 2 teaches inside <think> for a figure: 'description' "
                                 "(what it shows; a chart's asked entry) or 'solution' (the env row's worked "
                                 "solution: the reading, then each step of arithmetic, '180 - 66 - 49 = 65')")
    init_weights: str = option("", "weights.safetensors of an earlier alignment to continue from: its tower, "
                               "projector and LoRA factors are loaded; with --labels-steps 0 phase 1 and the "
                               "centring are skipped and phase 2 continues training the factors")
    eval_every: int = option(1000, "phase 1 steps between held-out evaluations (phase 2 evaluates 4 times)")
    eval_images: int = option(400, "held-out figures for the phase 1 curve")
    eval_prompts: int = option(48, "held-out prompts for the phase 2 curve")
    threads: int = option(2, "torch CPU threads")

    def validate(self) -> None:
        """Raise ValueError naming the first bad setting."""
        for name in ("labels_batch", "language_batch", "eval_every", "eval_images", "eval_prompts", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("labels_steps", "language_steps", "bn_recal", "lora_rank", "text_batch"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")
        if self.image_size < 16 or self.image_size % 16:
            raise ValueError(f"--image-size must be a positive multiple of 16, got {self.image_size}")
        for name in ("labels_lr", "language_lr", "lora_alpha"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"--{name.replace('_', '-')} must be a finite number above 0, got {value}")
        if not len(self.tower["hidden_sizes"]) == len(self.tower["depths"]) == 3:
            raise ValueError(f"--tower-widths {self.tower_widths!r} and --tower-depths {self.tower_depths!r} must "
                             "each name three stages (the tower's stride is 16: one image token per 16 × 16 cell)")
        unknown = [f for f in self.family_list if f not in FAMILY_NAMES]
        if unknown or not self.family_list:
            raise ValueError(f"--families: unknown {unknown}; choose from {', '.join(FAMILY_NAMES)}")
        _difficulties(self.difficulties, "difficulties")
        _difficulties(self.text_difficulties, "text-difficulties")
        if self.visual_targets not in VISUAL_TARGETS:
            raise ValueError(f"--visual-targets must be one of {', '.join(VISUAL_TARGETS)}, "
                             f"got {self.visual_targets!r}")
        if self.init_weights and not Path(self.init_weights).is_file():
            raise ValueError(f"--init-weights: no file {self.init_weights}")
        if self.init_weights and not self.lora_rank:
            raise ValueError("--init-weights continues an alignment's LoRA factors: --lora-rank must be its rank")

    @property
    def family_list(self) -> list[str]:
        return [f.strip() for f in self.families.split(",") if f.strip()]

    @property
    def difficulty_list(self) -> list[int]:
        return _difficulties(self.difficulties, "difficulties")

    @property
    def text_difficulty_list(self) -> list[int]:
        return _difficulties(self.text_difficulties, "text-difficulties")

    @property
    def tower(self) -> dict:
        """The ResNet tower's shape, as :func:`~lmmr1_agent.models.fastvlm.build_resnet_vlm` takes it."""
        widths = _ints(self.tower_widths, "tower-widths")
        return {"embedding_size": max(widths[0] // 2, 8), "hidden_sizes": widths,
                "depths": _ints(self.tower_depths, "tower-depths")}


def build_parser() -> argparse.ArgumentParser:
    """One option per AlignConfig field; errors are one line (exit status 2)."""
    from lmmr1_agent.cli import ArgumentParser, add_config_options

    parser = ArgumentParser(prog="python -m lmmr1_agent.align", description=__doc__)
    add_config_options(parser, AlignConfig)
    return parser


def peak_rss_gb() -> float:
    """This process's peak resident memory so far, in GB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def cosine_lr(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay to 10% of it (the learner's schedule)."""
    from lmmr1_agent.learner.algorithms import cosine_factor

    return peak * cosine_factor(step, total, warmup)


def build_vlm(config: AlignConfig):
    """The fresh (blind) VLM of ``config.text_model`` with the configured tower: ``(model, tokenizer)``."""
    from transformers import AutoTokenizer

    from lmmr1_agent.models.embedded import resolve_model
    from lmmr1_agent.models.fastvlm import build_resnet_vlm

    path = resolve_model(config.text_model)
    return build_resnet_vlm(path, AutoTokenizer.from_pretrained(path), image_size=config.image_size,
                            tower=config.tower, seed=config.seed)


def fingerprint(model, prefix: str) -> torch.Tensor:
    """A cheap checksum of the weights under ``prefix`` (sum and sum of squares per tensor; LoRA factors left
    out), to prove a phase left them untouched."""
    return torch.stack([torch.stack([p.double().sum(), p.double().pow(2).sum()])
                        for n, p in model.named_parameters() if n.startswith(prefix) and "lora_" not in n])


def _run_tensors(model, heads: LabelHeads | None) -> dict[str, torch.Tensor]:
    """What a checkpoint must hold: the tower (parameters and batch-norm statistics), the projector, the LoRA
    factors and the label heads; the language model's own weights are rebuilt from ``text_model``."""
    out = {f"model.{k}": v for k, v in model.model.state_dict().items()
           if k.startswith(VISION_PREFIXES) or "lora_" in k}
    if heads is not None:
        out.update({f"heads.{k}": v for k, v in heads.state_dict().items()})
    return out


def save_state(folder: Path, config: AlignConfig, progress: dict, model, heads, optimizer) -> None:
    """Write the run's resumable state (safetensors + JSON, never a pickle) atomically into ``folder``."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = _run_tensors(model, heads)
    groups = optimizer.state_dict()
    for index, moments in groups["state"].items():
        tensors.update({f"optimizer.{index}.{k}": torch.as_tensor(v) for k, v in moments.items()})
    tmp = folder / "state.safetensors.tmp"
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, tmp)
    meta = {"config": dataclasses.asdict(config), **progress, "param_groups": groups["param_groups"]}
    (folder / "state.json.tmp").write_text(json.dumps(meta) + "\n", encoding="utf-8")
    tmp.replace(folder / "state.safetensors")
    (folder / "state.json.tmp").replace(folder / "state.json")


def load_state(folder: Path, config: AlignConfig) -> tuple[dict, dict] | None:
    """``(progress, tensors)`` of a killed run in ``folder``, or None; ValueError if it ran other settings."""
    from safetensors.torch import load_file

    if not (folder / "state.json").is_file() or not (folder / "state.safetensors").is_file():
        return None
    meta = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    mine = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("threads", "output")}
    theirs = {k: v for k, v in meta["config"].items() if k not in ("threads", "output")}
    if mine != theirs:
        changed = sorted(k for k in mine if mine[k] != theirs.get(k))
        raise ValueError(f"{folder} holds a killed run with other settings ({', '.join(changed)}): rerun with "
                         f"those settings to resume it, or delete {folder} to start over")
    return meta, load_file(str(folder / "state.safetensors"))


def _restore(tensors: dict, model, heads, optimizer, param_groups: list) -> None:
    own = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    missing = [k for k in _run_tensors(model, None) if k[len("model."):] not in own]
    unexpected = [k for k in own if f"model.{k}" not in _run_tensors(model, None)]
    if missing or unexpected:
        raise ValueError(f"alignment state does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    model.model.load_state_dict(own, strict=False)
    if heads is not None:
        heads.load_state_dict({k[len("heads."):]: v for k, v in tensors.items() if k.startswith("heads.")})
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    if state:
        optimizer.load_state_dict({"state": state, "param_groups": param_groups})


def align(config: AlignConfig, *, progress: bool = True, state_dir: Path | None = None) -> dict:
    """Run both phases on a fresh VLM (resuming from ``state_dir`` if a killed run left its state there);
    return ``{"model", "tokenizer", "curve", "seconds", ...}`` with the LoRA factors still unmerged."""
    from lmmr1_agent.agents.hf import FastVlmAdapter

    config.validate()
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    model, tokenizer = build_vlm(config)
    adapter = FastVlmAdapter("align", tokenizer, model.config)
    before = fingerprint(model, "model.language_model.")
    earlier = _load_vision(model, Path(config.init_weights)) if config.init_weights else {}
    continuing = bool(config.init_weights) and config.labels_steps == 0
    families, difficulties, side = config.family_list, config.difficulty_list, config.image_size
    resumed = load_state(state_dir, config) if state_dir is not None else None
    done = resumed[0] if resumed else {"phase": "labels", "step": 0, "curve": [], "seconds": 0.0}
    curve: list[dict] = list(done["curve"])
    clock = time.monotonic() - done["seconds"]

    def minutes() -> float:
        return (time.monotonic() - clock) / 60

    def checkpoint(phase: str, step: int, heads, optimizer) -> None:
        if state_dir is not None:
            save_state(state_dir, config, {"phase": phase, "step": step, "curve": curve,
                                           "seconds": round(time.monotonic() - clock, 1),
                                           "merger_scale": scale}, model, heads, optimizer)

    # ---- phase 1: label heads read the image tokens; no language model ----
    held_out = draw_rows("test", _HELD_OUT_SEEDS, config.eval_images, families, difficulties, side)
    heads = LabelHeads(model.config.text_config.hidden_size)
    params = train_only(model, vision_parameters(model)) + list(heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.labels_lr, weight_decay=0.01)
    scale = done.get("merger_scale")
    if done["phase"] == "labels":
        if resumed:
            _restore(resumed[1], model, heads, optimizer, done["param_groups"])
            print(f"[align] resuming phase 1 at step {done['step']}", file=sys.stderr)
        model.train()  # batch norms normalise by the batch while the tower learns
        bar = tqdm(range(done["step"], config.labels_steps), desc="align: labels", disable=not progress,
                   file=sys.stderr, initial=done["step"], total=config.labels_steps)
        for step in bar:
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(step, config.labels_steps, config.labels_lr, warmup=50)
            rows = draw_rows("train", config.seed * 1_000_003 + step * config.labels_batch, config.labels_batch,
                             families, difficulties, side)
            loss, _ = label_loss(model, heads, rows)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if (step + 1) % config.eval_every == 0 or step + 1 == config.labels_steps:
                _recalibrate(model, config)
                accuracy = label_accuracy(model, heads, held_out)
                curve.append({"phase": "labels", "step": step + 1, "minutes": round(minutes(), 2),
                              "loss": round(loss.item(), 4), "held_out_labels_right": accuracy})
                per_family = ", ".join(f"{k} {v:.0%}" for k, v in accuracy["labels"].items() if k != "all")
                bar.write(f"[align] labels step {step + 1}: held-out labels right {accuracy['labels']['all']:.1%} "
                          f"({per_family}), figures with every label right {accuracy['figures']['all']:.1%} "
                          f"({minutes():.1f} min)")
                checkpoint("labels", step + 1, heads, optimizer)
        bar.close()
        if not continuing:  # a loaded tower keeps its statistics, a loaded projector its centring
            _recalibrate(model, config)
            figures = draw_rows("train", _RECAL_SEEDS, 256, families, difficulties, side)
            spread = image_spread(model, figures)
            scale = center_image_tokens(model, figures)
            curve.append({"phase": "centering", "minutes": round(minutes(), 2),
                          "image_spread_before": round(spread, 4),
                          "image_spread_after": round(image_spread(model, figures), 4), "scale": round(scale, 4)})
    model.eval()  # from here on batch norms use the statistics the agent will use

    # ---- phase 2: visual instruction tuning through the language model ----
    lora = add_lora(model, config.lora_rank, config.lora_alpha, seed=config.seed) if config.lora_rank else []
    if earlier:
        load_lora_factors(model, earlier)
    trainable = train_only(model, projector_parameters(model) + lora)
    optimizer = torch.optim.AdamW(trainable, lr=config.language_lr, weight_decay=0.0)
    start = 0
    if resumed and done["phase"] == "language":
        _restore(resumed[1], model, None, optimizer, done["param_groups"])
        start = done["step"]
        print(f"[align] resuming phase 2 at step {start}", file=sys.stderr)
    elif done["phase"] == "labels":
        checkpoint("language", 0, None, optimizer)
    tower = fingerprint(model, "model.vision_tower.")
    opening = SharedOpening(adapter)
    prompts = draw_rows("test", _HELD_OUT_SEEDS + 1_000_000, config.eval_prompts, sorted(set(families)),
                        difficulties, side)
    text_prompts = (draw_text_rows("test", _HELD_OUT_SEEDS, config.eval_prompts, config.text_difficulty_list)
                    if config.text_batch else [])
    evals = {max(1, round(config.language_steps * k / 4)) for k in range(1, 5)}
    bar = tqdm(range(start, config.language_steps), desc="align: language", disable=not progress, file=sys.stderr,
               initial=start, total=config.language_steps)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, config.language_steps, config.language_lr, warmup=20)
        rows = draw_rows("train", _LANGUAGE_SEEDS + config.seed * 1_000_003 + step * config.language_batch,
                         config.language_batch, families, difficulties, side)
        rows += draw_text_rows("train", _TEXT_SEEDS + config.seed * 1_000_003 + step * config.text_batch,
                               config.text_batch, config.text_difficulty_list)
        loss, stats = language_loss(model, language_batch(adapter, rows, config.visual_targets), opening)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", answer=f"{stats['answer_right']:.2f}")
        if step + 1 in evals:
            held = language_eval(model, adapter, opening, prompts, config.language_batch, config.visual_targets)
            if text_prompts:
                held.update(text_eval(model, adapter, opening, text_prompts, config.language_batch))
            curve.append({"phase": "language", "step": step + 1, "minutes": round(minutes(), 2),
                          "loss": round(loss.item(), 4), **held})
            text = (f"; text rehearsal: loss {held['held_out_text_loss']:.3f}, worked solutions right "
                    f"(teacher-forced) {held['held_out_text_response_right']:.1%}" if text_prompts else "")
            bar.write(f"[align] language step {step + 1}: held-out loss {held['held_out_loss']:.3f} "
                      f"({held['held_out_image_gain']:+.3f} with another figure of the family), answers right "
                      f"(teacher-forced) {held['held_out_answer_right']:.1%}{text} ({minutes():.1f} min)")
            checkpoint("language", step + 1, None, optimizer)
    bar.close()
    if not torch.equal(before, fingerprint(model, "model.language_model.")):
        raise RuntimeError("alignment changed a language-model weight: only the tower, the projector and the "
                           "LoRA factors may train")
    if not torch.equal(tower, fingerprint(model, "model.vision_tower.")):
        raise RuntimeError("phase 2 changed the vision tower: only the projector and the LoRA factors may train")
    return {"model": model, "tokenizer": tokenizer, "curve": curve, "seconds": round(time.monotonic() - clock, 1),
            "peak_rss_gb": round(peak_rss_gb(), 2), "merger_scale": scale}


def _recalibrate(model, config: AlignConfig) -> None:
    """Recompute the tower's batch-norm statistics on ``config.bn_recal`` fresh training figures."""
    if not config.bn_recal:
        return
    rows = draw_rows("train", _RECAL_SEEDS, config.bn_recal, config.family_list, config.difficulty_list,
                     config.image_size)
    batches = [rows[i:i + 64] for i in range(0, len(rows), 64)]
    recalibrate_batchnorm(model.model.vision_tower, lambda part: image_tokens(model, figure_pixels(model, part)),
                          batches)


@torch.no_grad()
def language_eval(model, adapter, opening: SharedOpening, rows: list[dict], batch: int,
                  visual: str = "description") -> dict[str, float]:
    """Held-out teacher-forced loss, share of answers whose every token is the argmax, and the image gain: how
    much the loss rises when each prompt shows another figure of its family (0: the model ignores the image)."""
    others = _same_family_swap(rows)
    totals = {"loss": 0.0, "answer": 0.0, "swapped": 0.0}
    for start in range(0, len(rows), batch):
        part = rows[start:start + batch]
        loss, stats = language_loss(model, language_batch(adapter, part, visual), opening)
        swapped = [{**row, "image": other["image"]} for row, other in zip(part, others[start:start + batch])]
        totals["loss"] += loss.item() * len(part)
        totals["answer"] += stats["answer_right"] * len(part)
        totals["swapped"] += language_loss(model, language_batch(adapter, swapped, visual),
                                           opening)[0].item() * len(part)
    return {"held_out_loss": round(totals["loss"] / len(rows), 4),
            "held_out_answer_right": round(totals["answer"] / len(rows), 4),
            "held_out_image_gain": round((totals["swapped"] - totals["loss"]) / len(rows), 4)}


@torch.no_grad()
def text_eval(model, adapter, opening: SharedOpening, rows: list[dict], batch: int) -> dict[str, float]:
    """On held-out text rehearsal problems: teacher-forced loss and the share of worked solutions (every token of
    the response, the arithmetic included) that are the argmax."""
    loss = right = 0.0
    for start in range(0, len(rows), batch):
        part = rows[start:start + batch]
        value, stats = language_loss(model, language_batch(adapter, part), opening)
        loss += value.item() * len(part)
        right += stats["response_right"] * len(part)
    return {"held_out_text_loss": round(loss / len(rows), 4),
            "held_out_text_response_right": round(right / len(rows), 4)}


def _load_vision(model, weights: Path) -> dict[str, torch.Tensor]:
    """Load an earlier alignment's tower and projector from ``weights`` into ``model`` (strictly); return its LoRA
    factors, for :func:`~lmmr1_agent.align.phases.load_lora_factors` once the layers are wrapped."""
    try:
        rest = load_vision_weights(model, weights)
    except ValueError as exc:
        raise ValueError(f"--init-weights {exc} (tower shape, --image-size)") from None
    return {k: v for k, v in rest.items() if "lora_" in k}


def _same_family_swap(rows: list[dict]) -> list[dict]:
    """``rows`` with each row replaced by the next row of its family (cyclically)."""
    by_family: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_family.setdefault(row["family"], []).append(index)
    out = list(rows)
    for indices in by_family.values():
        for here, there in zip(indices, indices[1:] + indices[:1]):
            out[here] = rows[there]
    return out


def earlier_recipe(config: AlignConfig) -> dict | None:
    """What ``--init-weights`` continues: the sha256 of the weights and the ``recipe.json`` beside them (None
    without ``--init-weights``); read before the run, since it may write over that folder."""
    import hashlib

    if not config.init_weights:
        return None
    weights = Path(config.init_weights)
    recipe = weights.parent / RECIPE_FILE
    return {"weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
            "recipe": json.loads(recipe.read_text(encoding="utf-8")) if recipe.is_file() else None}


def save_weights(result: dict, config: AlignConfig, command: list[str], folder: Path,
                 continues: dict | None = None) -> Path:
    """Write the tower, projector and LoRA updates (safetensors) and ``recipe.json`` (command, seed, data,
    curve, and ``continues``: the run it started from) to ``folder``: what
    :func:`lmmr1_agent.models.fastvlm.load_aligned_weights` puts into a fresh VLM."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    model = result["model"]
    state = {k[len("model."):]: v.detach().contiguous() for k, v in _run_tensors(model, None).items()
             if "lora_" not in k}
    # The low-rank factors ship in float16 (half the bytes; the package stays under 25 MB); the build adds their
    # product in float32. The tower and projector stay float32.
    state.update({k: v.to(torch.float16) for k, v in lora_deltas(model).items()})
    save_file(state, folder / WEIGHTS_FILE, metadata={"format": "pt"})
    recipe = {
        "command": " ".join(["python -m lmmr1_agent.align", *command]),
        "config": dataclasses.asdict(config),
        "model": {"image_size": config.image_size, "tower": config.tower, "lora_rank": config.lora_rank},
        "data": {"source": "lmmr1_env.visualmath.env.generate_task(split='train', ...) rendered by render_task",
                 "families": config.family_list, "difficulties": config.difficulty_list,
                 "image_size": config.image_size,
                 "phase 1": "figure labels (lmmr1_agent.align.data.figure_labels) read by attention heads from "
                            "the projector's image tokens; tower + projector train",
                 "phase 2": "env prompt (system + demonstration + figure + question) -> "
                            f"'<think>{config.visual_targets}</think><answer>gold answer</answer>' "
                            "(lmmr1_agent.align.data.target_text), loss on the response only; projector + LoRA "
                            "factors train, the tower is frozen",
                 "text rehearsal": (f"{config.text_batch} TextMath arithmetic problems (difficulties "
                                    f"{config.text_difficulty_list}, train split) per phase 2 step -> "
                                    "'<think>worked solution</think><answer>gold</answer>'"
                                    if config.text_batch else "none")},
        "parameters": sum(v.numel() for v in state.values()),
        "seconds": result["seconds"], "peak_rss_gb": result["peak_rss_gb"], "merger_scale": result["merger_scale"],
        "torch": torch.__version__,
        "curve": result["curve"],
    }
    if continues is not None:
        recipe["continues"] = continues
    (folder / RECIPE_FILE).write_text(json.dumps(recipe, indent=2) + "\n", encoding="utf-8")
    return folder


def main(argv: list[str] | None = None) -> int:
    """``python -m lmmr1_agent.align``: align the embedded VLM and write its weights to ``--output``."""
    import shutil

    from lmmr1_agent.cli import check_model, check_output_dir

    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    config = AlignConfig(**{k.replace("-", "_"): v for k, v in vars(parser.parse_args(argv)).items()})
    state_dir = Path(config.output) / STATE_DIR
    try:  # everything an hour-long run needs is checked before it starts, the output folder included
        config.validate()
        try:
            check_model(config.text_model)
        except ValueError as exc:
            raise ValueError(f"--text-model: {exc}") from None
        check_output_dir(config.output, "--output")
        load_state(state_dir, config)  # a killed run with other settings is an error now, not after an hour
    except ValueError as exc:  # ConfigError is one; __main__ prints it as one line with exit status 2
        raise SystemExit(f"{parser.prog}: error: {exc}") from None
    print(f"[align] config: {json.dumps(dataclasses.asdict(config))}", file=sys.stderr)
    continues = earlier_recipe(config)
    result = align(config, state_dir=state_dir)
    folder = save_weights(result, config, argv, Path(config.output), continues)
    if config.text_model == "embedded":  # pin what the install will rebuild from these weights
        import tempfile

        from lmmr1_agent.align.reference import write_reference
        from lmmr1_agent.models.embedded import build_vlm_folder

        with tempfile.TemporaryDirectory() as tmp:
            write_reference(build_vlm_folder(Path(tmp) / "vlm", folder), folder)
    shutil.rmtree(state_dir, ignore_errors=True)
    print(f"[align] done in {result['seconds'] / 60:.1f} min, peak RSS {result['peak_rss_gb']:.2f} GB; "
          f"weights in {folder}")
    return 0
