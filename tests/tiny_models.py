"""Tiny random models and a tokenizer trained at run time: the learner's and agents' tests need no hub."""

from __future__ import annotations

import sys
from pathlib import Path

CHATML = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)
CORPUS = [
    "<think>7 + 5 = 12</think><answer>12</answer>", "What is 7 + 5?", "Calculate: 13 + 29",
    "You are a helpful assistant who solves math problems step by step.", "The answer is 42.",
    "Solve for x: 3x + 5 = 20.", "How many red circles are in the picture?", "Left, Right, Up, Down",
] * 20


def build_tokenizer():
    """A byte-level BPE tokenizer (no unknown bytes) with ChatML special tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|im_end|>",
                                   bos_token="<|im_start|>", unk_token="<|endoftext|>")
    fast.chat_template = CHATML
    return fast


def build_llama(folder: Path, *, max_positions: int = 512, hidden_size: int = 64, seed: int = 0) -> Path:
    """Save a 2-layer random Llama chat model with the tiny tokenizer in ``folder``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    return _build_chat_model(folder, LlamaConfig, LlamaForCausalLM, max_positions=max_positions,
                             hidden_size=hidden_size, seed=seed)


def build_qwen2(folder: Path, *, seed: int = 0) -> Path:
    """Save a 2-layer random Qwen2 chat model (a non-Llama text model: q/k/v biases) with the tiny tokenizer in
    ``folder``."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    return _build_chat_model(folder, Qwen2Config, Qwen2ForCausalLM, max_positions=512, hidden_size=64, seed=seed)


def _build_chat_model(folder: Path, config_class, model_class, *, max_positions: int, hidden_size: int,
                      seed: int) -> Path:
    import torch

    tokenizer = build_tokenizer()
    config = config_class(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                          max_position_embeddings=max_positions, tie_word_embeddings=True,
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = model_class(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


#: A one-block vision tower: enough to carry images through the graft in tests.
TINY_VISION = {"depth": 1, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64}


def build_graft(folder: Path, llama_folder: Path) -> Path:
    """Save the tiny Llama at ``llama_folder`` grafted into Qwen2.5-VL (with :data:`TINY_VISION`) in ``folder``."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    from lmmr1_agent.models.graft import graft_into_qwen2_5_vl

    model, tokenizer = graft_into_qwen2_5_vl(LlamaForCausalLM.from_pretrained(llama_folder),
                                             AutoTokenizer.from_pretrained(llama_folder), vision=TINY_VISION)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


#: A three-stage ResNet tower of a few channels: 32 px figures become 4 image tokens.
TINY_TOWER = {"embedding_size": 8, "hidden_sizes": [8, 16, 32], "depths": [1, 1, 1]}


def build_fastvlm(folder: Path, llama_folder: Path, *, image_size: int = 32) -> Path:
    """Save the tiny Llama at ``llama_folder`` inside FastVLM with :data:`TINY_TOWER` in ``folder`` (the embedded
    VLM's architecture)."""
    from transformers import AutoTokenizer

    from lmmr1_agent.models.fastvlm import build_resnet_vlm
    from lmmr1_agent.models.saving import save_model_folder

    model, tokenizer = build_resnet_vlm(llama_folder, AutoTokenizer.from_pretrained(llama_folder),
                                        image_size=image_size, tower=TINY_TOWER)
    return save_model_folder(folder, model, tokenizer)


def train_command(model: Path, out: Path, steps: int) -> list[str]:
    """``python -m lmmr1_agent.train`` on the toy env with ``model``, a checkpoint every step, as a subprocess argv."""
    args = ["--stage", "fre", "--model", str(model), "--env", "Toy/Digits-v0", "--num-steps", str(steps),
            "--n-samples-per-prompt", "4", "--rollout-batch-size", "2", "--generate-max-len", "6",
            "--eval-prompts", "4", "--save-every", "1", "--keep-checkpoints", "3", "--lr", "1e-3",
            "--no-demonstration", "--output-dir", str(out), "--no-progress"]
    code = f"import sys, tests.toy_env; from lmmr1_agent.train import main; sys.exit(main({args!r}))"
    return [sys.executable, "-c", code]
