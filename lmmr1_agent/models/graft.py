"""Graft a Llama-family language model into a Qwen2.5-VL backbone with a fresh vision tower.

The text path of the result computes what the Llama model computes (Qwen2.5-VL's text layers are
Llama's plus q/k/v biases, which are zeroed; multimodal RoPE reduces to 1-D RoPE on text), so text
prompts get the same logits. The vision tower and merger start random: teaching them to see is the
alignment stage's job.
"""

from __future__ import annotations

import torch

#: Qwen2.5-VL's vision marker tokens, added to the tokenizer in this order.
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")

def chatml_template(image_marker: str) -> str:
    """ChatML with each image part written as ``image_marker``; text-only chats render exactly like SmolLM2's own
    template, so a VLM built around SmolLM2 sees the same token ids as the original model."""
    return (
        "{%- for message in messages -%}"
        "{%- if loop.first and message['role'] != 'system' -%}"
        "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
        "{%- endif -%}"
        "{{ '<|im_start|>' + message['role'] + '\\n' }}"
        "{%- if message['content'] is string -%}{{ message['content'] }}"
        "{%- else -%}{%- for part in message['content'] -%}"
        "{%- if part['type'] in ('image', 'image_url') -%}{{ '" + image_marker + "' }}"
        "{%- elif part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
        "{%- endfor -%}{%- endif -%}"
        "{{ '<|im_end|>\\n' }}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
    )


#: Qwen2.5-VL's: image parts as ``<|vision_start|><|image_pad|><|vision_end|>``.
CHAT_TEMPLATE = chatml_template("<|vision_start|><|image_pad|><|vision_end|>")

#: The default new vision tower: small enough to train on a CPU (about 1.3 M parameters with the merger).
DEFAULT_VISION = {"depth": 4, "hidden_size": 128, "num_heads": 4, "intermediate_size": 384, "patch_size": 14,
                  "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112}


def mrope_section(head_dim: int) -> list[int]:
    """Split head_dim / 2 rotary frequencies over (time, height, width) as Qwen2.5-VL does (16/24/24 of 64)."""
    half = head_dim // 2
    time = half // 4
    height = (half - time) // 2
    return [time, height, half - time - height]


def graft_into_qwen2_5_vl(llama, tokenizer, *, seed: int = 0, vision: dict | None = None):
    """``(Qwen2_5_VLForConditionalGeneration, tokenizer)`` carrying ``llama``'s language weights.

    The tokenizer gains the four vision marker tokens (their embeddings start at the mean embedding) and
    the chat template above. ``vision`` overrides :data:`DEFAULT_VISION`.
    """
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tokenizer.add_special_tokens({"additional_special_tokens": list(VISION_TOKENS)})
    tokenizer.chat_template = CHAT_TEMPLATE
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in VISION_TOKENS}
    lc = llama.config
    head_dim = getattr(lc, "head_dim", None) or lc.hidden_size // lc.num_attention_heads
    rope = dict(getattr(lc, "rope_parameters", None) or {"rope_type": "default", "rope_theta": lc.rope_theta})
    if rope.get("rope_type", "default") != "default":
        raise ValueError(f"cannot graft a model with {rope['rope_type']!r} RoPE scaling into Qwen2.5-VL")
    rope["mrope_section"] = mrope_section(head_dim)
    vocab = max(len(tokenizer), lc.vocab_size)
    text_config = {
        "vocab_size": vocab, "hidden_size": lc.hidden_size, "intermediate_size": lc.intermediate_size,
        "num_hidden_layers": lc.num_hidden_layers, "num_attention_heads": lc.num_attention_heads,
        "num_key_value_heads": lc.num_key_value_heads, "hidden_act": lc.hidden_act, "rms_norm_eps": lc.rms_norm_eps,
        "max_position_embeddings": lc.max_position_embeddings, "rope_parameters": rope,
        "tie_word_embeddings": lc.tie_word_embeddings, "bos_token_id": lc.bos_token_id,
        "eos_token_id": lc.eos_token_id, "pad_token_id": tokenizer.pad_token_id,
    }
    vision_config = {**DEFAULT_VISION, **(vision or {}), "out_hidden_size": lc.hidden_size}
    vision_config["fullatt_block_indexes"] = [vision_config["depth"] - 1]
    config = Qwen2_5_VLConfig(
        text_config=text_config, vision_config=vision_config, tie_word_embeddings=lc.tie_word_embeddings,
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    # The grafted language model only knows 1-D RoPE: image tokens keep sequence positions, like text
    # (QwenVLAdapter reads this; a real Qwen2.5-VL gets its 3-D multimodal positions).
    config.lmmr1_image_positions = "sequence"
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32)
    copy_language_weights(llama, model, zero=("q_proj.bias", "k_proj.bias", "v_proj.bias"))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = lc.eos_token_id
    return model, tokenizer


def copy_language_weights(llama, model, *, zero: tuple[str, ...] = ()) -> None:
    """Copy ``llama``'s weights into ``model.model.language_model`` / ``lm_head`` (a VLM built around it).

    New vocabulary rows (the image tokens) start at the mean embedding; target weights ending in one of ``zero``
    (the biases Llama lacks) are zeroed. Raises KeyError if a Llama weight has no home or a language weight is
    left uninitialised.
    """
    source = llama.state_dict()
    target = model.state_dict()
    tied = llama.config.tie_word_embeddings
    copied = set()
    kind = type(model).__name__
    with torch.no_grad():
        for name, tensor in source.items():
            if name == "lm_head.weight" and tied:
                continue
            new_name = name.replace("model.", "model.language_model.", 1) if name.startswith("model.") else name
            if new_name not in target:
                raise KeyError(f"graft: Llama weight {name} has no counterpart {new_name} in {kind}")
            if new_name.endswith("embed_tokens.weight") or new_name == "lm_head.weight":
                rows = tensor.shape[0]
                target[new_name][:rows].copy_(tensor)
                target[new_name][rows:].copy_(tensor.mean(dim=0, keepdim=True))
            else:
                target[new_name].copy_(tensor)
            copied.add(new_name)
        for name, tensor in target.items():
            if zero and name.startswith("model.language_model.") and name.endswith(zero):
                tensor.zero_()
                copied.add(name)
    missing = [n for n in target if n.startswith("model.language_model.") and n not in copied]
    if missing:
        raise KeyError(f"graft: language weights of {kind} left uninitialised: {missing[:5]}")
