"""The alignment run: config, the two phases in one linear loop, and the shipped weights with their recipe."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from lmmr1_agent.align.data import FAMILY_NAMES, PICTURE_FAMILIES, draw_rows
from lmmr1_agent.align.phases import (
    FrozenPrefix,
    LabelHeads,
    freeze_language,
    label_accuracy,
    label_loss,
    language_batch,
    language_loss,
    match_embedding_scale,
)

#: Where the shipped aligned weights live inside the package.
VISION_DIR = Path(__file__).resolve().parents[1] / "models" / "vision"
WEIGHTS_FILE = "vision.safetensors"
RECIPE_FILE = "recipe.json"
#: Seed offsets so the two phases and the held-out figures never share a draw.
_LANGUAGE_SEEDS = 10_000_000
_HELD_OUT_SEEDS = 20_000_000


@dataclass
class AlignConfig:
    """Every setting of an alignment run (``python -m lmmr1_agent.align --help`` lists them)."""

    text_model: str = field(default="embedded", metadata={"help": "language model to graft: 'embedded' "
                                                                   "(SmolLM2-135M-Instruct) or a Llama folder"})
    output: str = field(default=str(VISION_DIR), metadata={"help": "folder for vision.safetensors and recipe.json"})
    seed: int = field(default=0, metadata={"help": "seeds the tower's initialisation and every figure drawn"})
    families: str = field(default=",".join(PICTURE_FAMILIES),
                          metadata={"help": "comma-separated VisualMath families phase 1 learns to read"})
    language_families: str = field(default=",".join([*PICTURE_FAMILIES, *FAMILY_NAMES]),
                                   metadata={"help": "comma-separated families phase 2 draws its prompts from; a "
                                                     "family named twice is drawn twice as often"})
    difficulties: str = field(default="1", metadata={"help": "comma-separated difficulties to draw figures from"})
    image_size: int = field(default=224, metadata={"help": "figure side in pixels (a multiple of 28)"})
    depth: int = field(default=6, metadata={"help": "vision tower blocks"})
    width: int = field(default=192, metadata={"help": "vision tower hidden size"})
    heads: int = field(default=4, metadata={"help": "vision tower attention heads"})
    window: int = field(default=112, metadata={"help": "attention window of the tower's blocks but the last, in "
                                                       "pixels (a multiple of 28; Qwen2.5-VL's 112; 224 or more "
                                                       "makes every block see the whole 224-px figure)"})
    labels_steps: int = field(default=500, metadata={"help": "phase 1 steps (label heads, no language model)"})
    labels_batch: int = field(default=32, metadata={"help": "phase 1 figures per step"})
    labels_lr: float = field(default=1e-3, metadata={"help": "phase 1 peak learning rate (AdamW, cosine)"})
    language_steps: int = field(default=450, metadata={"help": "phase 2 steps (through the frozen language model)"})
    language_batch: int = field(default=8, metadata={"help": "phase 2 figures per step"})
    language_lr: float = field(default=3e-4, metadata={"help": "phase 2 peak learning rate (AdamW, cosine)"})
    eval_every: int = field(default=100, metadata={"help": "phase 1 steps between held-out evaluations "
                                                            "(phase 2 evaluates 4 times)"})
    eval_images: int = field(default=300, metadata={"help": "held-out figures for the phase 1 curve"})
    eval_prompts: int = field(default=48, metadata={"help": "held-out prompts for the phase 2 curve"})
    threads: int = field(default=2, metadata={"help": "torch CPU threads"})

    def validate(self) -> None:
        """Raise ValueError naming the first bad setting."""
        for name in ("labels_batch", "language_batch", "eval_every", "eval_images", "eval_prompts", "threads",
                     "depth", "width", "heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("labels_steps", "language_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")
        if self.image_size < 28 or self.image_size % 28:
            raise ValueError(f"--image-size must be a positive multiple of 28 (patch 14 × merge 2), "
                             f"got {self.image_size}")
        for name in ("labels_lr", "language_lr"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"--{name.replace('_', '-')} must be a finite number above 0, got {value}")
        if self.window < 28 or self.window % 28:
            raise ValueError(f"--window must be a positive multiple of 28, got {self.window}")
        if self.width % self.heads or (self.width // self.heads) % 4:
            raise ValueError(f"--width {self.width} must split into --heads {self.heads} heads of a size "
                             "divisible by 4 (2-D rotary positions)")
        for name, families in (("families", self.family_list), ("language-families", self.language_family_list)):
            unknown = [f for f in families if f not in FAMILY_NAMES]
            if unknown or not families:
                raise ValueError(f"--{name}: unknown {unknown}; choose from {', '.join(FAMILY_NAMES)}")
        if not self.difficulty_list or any(d not in (1, 2, 3, 4, 5) for d in self.difficulty_list):
            raise ValueError(f"--difficulties must be numbers 1-5, got {self.difficulties!r}")

    @property
    def family_list(self) -> list[str]:
        return [f.strip() for f in self.families.split(",") if f.strip()]

    @property
    def language_family_list(self) -> list[str]:
        return [f.strip() for f in self.language_families.split(",") if f.strip()]

    @property
    def difficulty_list(self) -> list[int]:
        try:
            return [int(d) for d in self.difficulties.split(",") if d.strip()]
        except ValueError:
            raise ValueError(f"--difficulties must be numbers 1-5, got {self.difficulties!r}") from None

    @property
    def vision(self) -> dict:
        """The tower's shape, as :func:`~lmmr1_agent.models.graft.graft_into_qwen2_5_vl` takes it."""
        return {"depth": self.depth, "hidden_size": self.width, "num_heads": self.heads,
                "intermediate_size": 3 * self.width, "patch_size": 14, "spatial_merge_size": 2,
                "temporal_patch_size": 2, "window_size": self.window}


def build_parser() -> argparse.ArgumentParser:
    """One option per AlignConfig field; errors are one line (exit status 2)."""
    from lmmr1_agent.cli import ArgumentParser

    parser = ArgumentParser(prog="python -m lmmr1_agent.align", description=__doc__)
    for f in dataclasses.fields(AlignConfig):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default,
                            help=f"{f.metadata['help']} (default: {f.default})")
    return parser


def peak_rss_gb() -> float:
    """This process's peak resident memory so far, in GB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def cosine_lr(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay to 10% of it."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def build_graft(config: AlignConfig):
    """The random-tower graft of ``config.text_model`` with the configured tower: ``(model, tokenizer)``."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    from lmmr1_agent.models.embedded import resolve_model
    from lmmr1_agent.models.graft import graft_into_qwen2_5_vl

    path = resolve_model(config.text_model)
    llama = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32)
    return graft_into_qwen2_5_vl(llama, AutoTokenizer.from_pretrained(path), seed=config.seed, vision=config.vision)


def language_fingerprint(model) -> torch.Tensor:
    """A cheap checksum of every non-vision parameter (sum and sum of squares per tensor)."""
    return torch.stack([torch.stack([p.double().sum(), p.double().pow(2).sum()])
                        for n, p in model.named_parameters() if not n.startswith("model.visual.")])


def align(config: AlignConfig, *, progress: bool = True) -> dict:
    """Run both phases on a fresh graft; return ``{"model", "tokenizer", "curve", "seconds", ...}``."""
    from lmmr1_agent.agents.hf import DEFAULT_MIN_PIXELS, QwenVLAdapter

    config.validate()
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    start = time.monotonic()
    model, tokenizer = build_graft(config)
    model.eval()  # no dropout anywhere; gradients still flow to the vision parameters
    trainable = freeze_language(model)
    before = language_fingerprint(model)
    adapter = QwenVLAdapter("align", tokenizer, model.config, min_pixels=DEFAULT_MIN_PIXELS,
                            max_pixels=config.image_size**2)
    families, difficulties, side = config.family_list, config.difficulty_list, config.image_size
    curve: list[dict] = []

    def minutes() -> float:
        return (time.monotonic() - start) / 60

    # ---- phase 1: label heads, no language model ----
    held_out = draw_rows("test", _HELD_OUT_SEEDS, config.eval_images, families, difficulties, side)
    heads = LabelHeads(model.config.text_config.hidden_size)
    params = trainable + list(heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.labels_lr, weight_decay=0.01)
    bar = tqdm(range(config.labels_steps), desc="align: labels", disable=not progress, file=sys.stderr)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, config.labels_steps, config.labels_lr, warmup=50)
        rows = draw_rows("train", config.seed * 1_000_003 + step * config.labels_batch, config.labels_batch,
                         families, difficulties, side)
        loss, _ = label_loss(model, heads, adapter.image_processor, rows)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % config.eval_every == 0 or step + 1 == config.labels_steps:
            accuracy = label_accuracy(model, heads, adapter.image_processor, held_out)
            curve.append({"phase": "labels", "step": step + 1, "minutes": round(minutes(), 2),
                          "loss": round(loss.item(), 4), "held_out_labels_right": accuracy})
            per_family = ", ".join(f"{k} {v:.0%}" for k, v in accuracy["figures"].items() if k != "all")
            bar.write(f"[align] labels step {step + 1}: held-out labels right {accuracy['labels']['all']:.1%}, "
                      f"figures with every label right {accuracy['figures']['all']:.1%} ({per_family}) "
                      f"({minutes():.1f} min)")
    bar.close()
    scale = match_embedding_scale(model, adapter.image_processor, held_out[:64])

    # ---- phase 2: through the frozen language model ----
    prefix = FrozenPrefix(model, adapter)
    language_families = config.language_family_list
    prompts = draw_rows("test", _HELD_OUT_SEEDS + 1_000_000, config.eval_prompts, sorted(set(language_families)),
                        difficulties, side)
    optimizer = torch.optim.AdamW(trainable, lr=config.language_lr, weight_decay=0.0)
    evals = {max(1, round(config.language_steps * k / 4)) for k in range(1, 5)}
    bar = tqdm(range(config.language_steps), desc="align: language", disable=not progress, file=sys.stderr)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, config.language_steps, config.language_lr, warmup=10)
        rows = draw_rows("train", _LANGUAGE_SEEDS + config.seed * 1_000_003 + step * config.language_batch,
                         config.language_batch, language_families, difficulties, side)
        loss, stats = language_loss(model, language_batch(adapter, rows), prefix)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", answer=f"{stats['answer_right']:.2f}")
        if step + 1 in evals:
            held = language_eval(model, adapter, prefix, prompts, config.language_batch)
            curve.append({"phase": "language", "step": step + 1, "minutes": round(minutes(), 2),
                          "loss": round(loss.item(), 4), **held})
            bar.write(f"[align] language step {step + 1}: held-out loss {held['held_out_loss']:.3f}, answers "
                      f"right (teacher-forced) {held['held_out_answer_right']:.1%} ({minutes():.1f} min)")
    bar.close()
    if not torch.equal(before, language_fingerprint(model)):
        raise RuntimeError("alignment changed a language-model weight: only model.visual.* may train")
    return {"model": model, "tokenizer": tokenizer, "curve": curve, "seconds": round(time.monotonic() - start, 1),
            "peak_rss_gb": round(peak_rss_gb(), 2), "merger_scale": scale}


@torch.no_grad()
def language_eval(model, adapter, prefix: FrozenPrefix, rows: list[dict], batch: int) -> dict[str, float]:
    """Held-out teacher-forced loss and share of answers whose every token is the argmax."""
    losses, answers = [], []
    for start in range(0, len(rows), batch):
        part = rows[start:start + batch]
        loss, stats = language_loss(model, language_batch(adapter, part), prefix)
        losses.append(loss.item() * len(part))
        answers.append(stats["answer_right"] * len(part))
    return {"held_out_loss": round(sum(losses) / len(rows), 4),
            "held_out_answer_right": round(sum(answers) / len(rows), 4)}


def save_vision(result: dict, config: AlignConfig, command: list[str], folder: Path) -> Path:
    """Write the tower + merger weights (safetensors) and ``recipe.json`` (command, seed, data, curve) to ``folder``."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in result["model"].model.visual.state_dict().items()}
    save_file(state, folder / WEIGHTS_FILE, metadata={"format": "pt"})
    recipe = {
        "command": " ".join(["python -m lmmr1_agent.align", *command]),
        "config": dataclasses.asdict(config),
        "vision": config.vision,
        "data": {"source": "lmmr1_env.visualmath.env.generate_task(split='train', ...) rendered by render_task",
                 "families": config.family_list, "language_families": config.language_family_list,
                 "difficulties": config.difficulty_list,
                 "image_size": config.image_size,
                 "phase 1": "figure labels (lmmr1_agent.align.data.figure_labels) read by attention heads",
                 "phase 2": "env prompt (system + demonstration + figure + question) -> "
                            "'<think>description</think><answer>gold answer</answer>', loss on the response only"},
        "parameters": sum(v.numel() for v in state.values()),
        "seconds": result["seconds"], "peak_rss_gb": result["peak_rss_gb"], "merger_scale": result["merger_scale"],
        "torch": torch.__version__,
        "curve": result["curve"],
    }
    (folder / RECIPE_FILE).write_text(json.dumps(recipe, indent=2) + "\n", encoding="utf-8")
    return folder


def main(argv: list[str] | None = None) -> int:
    """``python -m lmmr1_agent.align``: align the vision tower and write it to ``--output``."""
    from lmmr1_agent.cli import check_model, check_output_dir

    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    config = AlignConfig(**{k.replace("-", "_"): v for k, v in vars(parser.parse_args(argv)).items()})
    try:  # everything a 45-minute run needs is checked before it starts, the output folder included
        config.validate()
        try:
            check_model(config.text_model)
        except ValueError as exc:
            raise ValueError(f"--text-model: {exc}") from None
        check_output_dir(config.output, "--output")
    except ValueError as exc:  # ConfigError is one; __main__ prints it as one line with exit status 2
        raise SystemExit(f"{parser.prog}: error: {exc}") from None
    print(f"[align] config: {json.dumps(dataclasses.asdict(config))}", file=sys.stderr)
    result = align(config)
    folder = save_vision(result, config, argv, Path(config.output))
    if config.text_model == "embedded":  # pin what the install will rebuild from these weights
        import tempfile

        from lmmr1_agent.align.reference import write_reference
        from lmmr1_agent.models.embedded import build_graft_folder

        with tempfile.TemporaryDirectory() as tmp:
            built = build_graft_folder(Path(tmp) / "graft", vision=config.vision,
                                       weights=folder / WEIGHTS_FILE)
            write_reference(built, folder)
    print(f"[align] done in {result['seconds'] / 60:.1f} min, peak RSS {result['peak_rss_gb']:.2f} GB; "
          f"weights in {folder}")
    return 0
