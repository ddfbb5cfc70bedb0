"""Tiny random image-text-to-text (and chat) models of real families, saved with processors made fully offline.

Each builder ``build_x(folder, seed=0)`` trains a byte-level BPE tokenizer at run time with the family's own special
tokens, writes a faithful simplification of the family's chat template (on the processor and the tokenizer), pairs
the family's own PIL image processor with a 1-layer vision tower sized for 32-64 px images (4-24 image tokens), and
saves model, processor (or tokenizer) and generation config with ``save_pretrained`` into ``folder``, which
``AutoProcessor`` / ``AutoTokenizer`` / ``AutoConfig`` / ``AutoModelForImageTextToText`` (``AutoModelForCausalLM``
for :data:`TEXT_FAMILIES`) then load. Weights are random and deterministic (``torch.manual_seed(seed)``).

Without torchvision, transformers cannot build a processor that has a video processor (Qwen2-VL, Qwen2.5-VL,
Qwen3-VL, LLaVA-OneVision, SmolVLM): importing this module calls the library's
:func:`lmmr1_agent.agents.processors.image_only_processors` (as the Hugging Face agent does before it loads one).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lmmr1_agent.agents.processors import image_only_processors
from tests.tiny_models import CORPUS

image_only_processors()

#: Chat-shaped lines added to the training corpus so the role headers become a few merged tokens.
CHAT_CORPUS = ["system", "user", "assistant", "model", "User:", "Assistant:", "System:", "USER:", "ASSISTANT:",
               "You solve problems.", "What is in the image?"] * 10

# --------------------------------------------------------------------------------------------------------------------
# Chat templates (simplified from each family's real one; content is a string or a list of text/image parts)
# --------------------------------------------------------------------------------------------------------------------

#: One ChatML message, each image as ``<|vision_start|><|image_pad|><|vision_end|>`` in place (Qwen2-VL to Qwen3-VL).
_QWEN_MESSAGE = (
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' or 'image' in part -%}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'video' or 'video' in part -%}{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif 'text' in part -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
)
_QWEN_GENERATION_PROMPT = "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"

#: Qwen2-VL / Qwen2.5-VL: a default system prompt when none is given.
QWEN2_VL_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}" + _QWEN_MESSAGE + "{%- endfor -%}" + _QWEN_GENERATION_PROMPT
)

#: Qwen3-VL: no default system prompt.
QWEN3_VL_TEMPLATE = "{%- for message in messages -%}" + _QWEN_MESSAGE + "{%- endfor -%}" + _QWEN_GENERATION_PROMPT

#: Qwen3 (text): ChatML; ``enable_thinking=False`` opens the answer with an empty think block, as the real one does.
QWEN3_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}{%- if 'text' in part -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}{{ '<think>\\n\\n</think>\\n\\n' }}{%- endif -%}"
    "{%- endif -%}"
)

#: Gemma 3: ``<bos>``, the system message folded into the first user turn, ``model`` as the assistant role, text
#: trimmed, each image as ``<start_of_image>``.
GEMMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}"
    "{%- else -%}{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] | trim }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)


def _idefics_template(prefix: str) -> str:
    """Idefics3 (``<|begin_of_text|>``) and SmolVLM (``<|im_start|>``): ``Role:`` headers (``Role: `` before text),
    each image as ``<image>``, every turn closed by ``<end_of_utterance>\\n``, ``Assistant:`` to prompt."""
    return (
        "{{ '" + prefix + "' }}"
        "{%- for message in messages -%}"
        "{{ message['role'] | capitalize }}"
        "{%- if message['content'] is string -%}{{ ': ' + message['content'] }}"
        "{%- else -%}"
        "{%- if message['content'][0]['type'] == 'image' -%}{{ ':' }}{%- else -%}{{ ': ' }}{%- endif -%}"
        "{%- for part in message['content'] -%}"
        "{%- if part['type'] == 'text' -%}{{ part['text'] }}"
        "{%- elif part['type'] == 'image' -%}{{ '<image>' }}{%- endif -%}"
        "{%- endfor -%}{%- endif -%}"
        "{{ '<end_of_utterance>\\n' }}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ 'Assistant:' }}{%- endif -%}"
    )


IDEFICS3_TEMPLATE = _idefics_template("<|begin_of_text|>")
SMOLVLM_TEMPLATE = _idefics_template("<|im_start|>")

#: LLaVA-1.5 (Vicuna v1): ``<s>``, the system text as a preamble, ``USER: `` with each image as ``<image>\\n``
#: before the text, ``ASSISTANT: `` answers closed by ``</s>``, ``ASSISTANT:`` to prompt.
LLAVA_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{%- if message['content'] is string -%}{%- set text = message['content'] -%}{%- set n_images = 0 -%}"
    "{%- else -%}"
    "{%- set text = message['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join(' ') -%}"
    "{%- set n_images = message['content'] | selectattr('type', 'equalto', 'image') | list | length -%}"
    "{%- endif -%}"
    "{%- if message['role'] == 'system' -%}{{ text + ' ' }}"
    "{%- elif message['role'] == 'user' -%}{{ 'USER: ' + '<image>\\n' * n_images + text + ' ' }}"
    "{%- else -%}{{ 'ASSISTANT: ' + text + eos_token }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'ASSISTANT:' }}{%- endif -%}"
)

#: LLaVA-OneVision (Qwen2 inside): ChatML, each image as ``<image>\\n`` before the message's text.
LLAVA_ONEVISION_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}"
    "{%- for part in message['content'] | selectattr('type', 'equalto', 'image') -%}{{ '<image>\\n' }}{%- endfor -%}"
    "{%- for part in message['content'] | selectattr('type', 'equalto', 'video') -%}{{ '<video>\\n' }}{%- endfor -%}"
    "{{ message['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('\\n') }}"
    "{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

QWEN_VL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>"]
GEMMA3_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
                 "<end_of_image>", "<image_soft_token>"]
#: The ``<row_i_col_j>`` tags Idefics3/SmolVLM processors write for split images (they look up 6 x 6).
ROW_COL_TOKENS = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
IDEFICS_IMAGE_TOKENS = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]




# --------------------------------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------------------------------

def train_tokenizer(special_tokens: list[str], template: str, *, bos: str | None = None, eos: str, pad: str,
                    unk: str | None = None, named: dict[str, str] | None = None, plain_tokens: list[str] = (),
                    prepend_bos: bool = False):
    """A byte-level BPE tokenizer (vocab ~400 + specials) trained on :data:`tests.tiny_models.CORPUS`, with
    ``special_tokens`` first (ids 0..), ``named`` model-specific tokens as attributes (``tokenizer.image_token``,
    ``tokenizer.image_token_id``...), ``plain_tokens`` as non-special added tokens, ``prepend_bos`` adding ``bos``
    when tokenizing with special tokens, and ``template`` as its chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400 + len(special_tokens), special_tokens=list(special_tokens),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS + CHAT_CORPUS, trainer)
    if prepend_bos:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                           special_tokens=[(bos, tok.token_to_id(bos))])
    if plain_tokens:
        tok.add_tokens(list(plain_tokens))
    kwargs = {"bos_token": bos, "unk_token": unk}
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, pad_token=pad,
                                   **{k: v for k, v in kwargs.items() if v is not None},
                                   **({"extra_special_tokens": dict(named)} if named else {}))
    fast.chat_template = template
    return fast


def _ids(tokenizer, *tokens: str) -> list[int]:
    ids = tokenizer.convert_tokens_to_ids(list(tokens))
    missing = [t for t, i in zip(tokens, ids) if i is None or i == tokenizer.unk_token_id]
    assert not missing, f"tokens missing from the tokenizer: {missing}"
    return ids


def _text_config(tokenizer, *, turn_end: str, hidden: int = 64, **extra) -> dict:
    """A 2-layer decoder of width ``hidden`` (4 heads of 16, 2 KV heads) over the whole tokenizer."""
    bos = tokenizer.bos_token_id
    return {"vocab_size": len(tokenizer), "hidden_size": hidden, "intermediate_size": 2 * hidden,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 2048, "bos_token_id": bos, "eos_token_id": _ids(tokenizer, turn_end)[0],
            "pad_token_id": tokenizer.pad_token_id, "tie_word_embeddings": True, **extra}


def _generation_config(tokenizer, *stop_tokens: str):
    """Greedy-by-default generation config stopping at the family's turn end (then its other stops)."""
    from transformers import GenerationConfig

    return GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=_ids(tokenizer, *stop_tokens),
                            pad_token_id=tokenizer.pad_token_id)


def _save(folder: Path, model, saver, generation) -> Path:
    folder = Path(folder)
    model.generation_config = generation
    model.save_pretrained(folder)
    saver.save_pretrained(folder)
    return folder


def _qwen_image_processor(patch: int, *, mean=None, std=None):
    """Qwen-VL's PIL processor: sides rounded to ``patch * 2`` (merge 2), 32² to 64² pixels."""
    from transformers import Qwen2VLImageProcessorPil

    norm = {} if mean is None else {"image_mean": mean, "image_std": std}
    return Qwen2VLImageProcessorPil(size={"shortest_edge": 32 * 32, "longest_edge": 64 * 64}, patch_size=patch,
                                    temporal_patch_size=2, merge_size=2, **norm)


# --------------------------------------------------------------------------------------------------------------------
# Image families
# --------------------------------------------------------------------------------------------------------------------

def _build_qwen_vl(folder: Path, seed: int, config_class, model_class, processor_class, template: str,
                   vision: dict, rope: dict, patch: int, text_extra: dict | None = None, norm: dict | None = None):
    import torch

    tokenizer = train_tokenizer(QWEN_VL_TOKENS, template, eos="<|im_end|>", pad="<|endoftext|>")
    image, video, start, end = _ids(tokenizer, "<|image_pad|>", "<|video_pad|>", "<|vision_start|>",
                                    "<|vision_end|>")
    text = _text_config(tokenizer, turn_end="<|im_end|>", rope_parameters=rope, **(text_extra or {}))
    config = config_class(text_config=text, vision_config=vision, image_token_id=image, video_token_id=video,
                          vision_start_token_id=start, vision_end_token_id=end, tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = model_class(config)
    processor = processor_class(image_processor=_qwen_image_processor(patch, **(norm or {})), tokenizer=tokenizer,
                                video_processor=_qwen_video_processor(config_class), chat_template=template)
    return _save(folder, model, processor, _generation_config(tokenizer, "<|im_end|>", "<|endoftext|>"))


def _qwen_video_processor(config_class):
    """None where transformers cannot build a video processor (no torchvision: lmmr1's CPU install); with torchvision
    (vLLM's environment) the family's default, which its processor then requires."""
    from transformers.utils import is_torchvision_available

    if not is_torchvision_available():
        return None
    if config_class.__name__.startswith("Qwen3"):
        from transformers import Qwen3VLVideoProcessor

        return Qwen3VLVideoProcessor()
    from transformers import Qwen2VLVideoProcessor

    return Qwen2VLVideoProcessor()


def build_qwen2_vl(folder: Path, seed: int = 0) -> Path:
    """Qwen2-VL: patch 8, merge 2 (a 48x40 image: 4x6 patches, 6 ``<|image_pad|>``)."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor

    vision = {"depth": 1, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "mlp_ratio": 2, "patch_size": 8,
              "spatial_merge_size": 2, "temporal_patch_size": 2}
    rope = {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [2, 3, 3]}
    return _build_qwen_vl(folder, seed, Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor,
                          QWEN2_VL_TEMPLATE, vision, rope, patch=8)


def build_qwen2_5_vl(folder: Path, seed: int = 0, heads_of: int = 16) -> Path:
    """Qwen2.5-VL: patch 8, merge 2, window 32 px (one full-attention block); 4 text heads of ``heads_of`` (vLLM's
    CPU attention needs 32 or more)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor

    hidden = 4 * heads_of
    vision = {"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": hidden,
              "patch_size": 8, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 32,
              "fullatt_block_indexes": [0]}
    section = heads_of // 2  # M-RoPE's temporal, height and width shares of the rotary half
    rope = {"rope_type": "default", "rope_theta": 1_000_000.0,
            "mrope_section": [section - 2 * (section * 3 // 8), section * 3 // 8, section * 3 // 8]}
    return _build_qwen_vl(folder, seed, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor,
                          QWEN2_VL_TEMPLATE, vision, rope, patch=8, text_extra={"hidden": hidden})


def build_qwen3_vl(folder: Path, seed: int = 0) -> Path:
    """Qwen3-VL: patch 8, merge 2, a 4x4 learned position grid, DeepStack from its one block, interleaved M-RoPE."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLProcessor

    vision = {"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
              "patch_size": 8, "spatial_merge_size": 2, "temporal_patch_size": 2, "num_position_embeddings": 16,
              "deepstack_visual_indexes": [0]}
    rope = {"rope_type": "default", "rope_theta": 5_000_000.0, "mrope_section": [3, 3, 2], "mrope_interleaved": True}
    return _build_qwen_vl(folder, seed, Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLProcessor,
                          QWEN3_VL_TEMPLATE, vision, rope, patch=8, text_extra={"head_dim": 16},
                          norm={"mean": [0.5] * 3, "std": [0.5] * 3})


def build_llava(folder: Path, seed: int = 0) -> Path:
    """LLaVA-1.5: a CLIP tower (32 px, patch 8, features of the layer before last, CLS dropped: 16 ``<image>``),
    a 2-layer GELU projector, a Llama inside."""
    import torch
    from transformers import CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    tokenizer = train_tokenizer(["<unk>", "<s>", "</s>", "<pad>", "<image>"], LLAVA_TEMPLATE, bos="<s>", eos="</s>",
                                pad="<pad>", unk="<unk>", prepend_bos=True)
    image = _ids(tokenizer, "<image>")[0]
    vision = {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
              "num_attention_heads": 2, "image_size": 32, "patch_size": 8, "projection_dim": 32}
    config = LlavaConfig(vision_config=vision, text_config={"model_type": "llama", **_text_config(
        tokenizer, turn_end="</s>")}, image_token_index=image, image_seq_length=16,
        vision_feature_select_strategy="default", vision_feature_layer=-2, tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    images = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=8,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               image_token="<image>", chat_template=LLAVA_TEMPLATE)
    return _save(folder, model, processor, _generation_config(tokenizer, "</s>"))


def build_llava_onevision(folder: Path, seed: int = 0) -> Path:
    """LLaVA-OneVision: a SigLIP tower (32 px crops, patch 16: 2 x 2 tokens a crop), AnyRes over 32-64 px grids
    (a 48x40 image: 4 base tokens plus the unpadded 4 x 4 grid and its 4 newlines, 24 ``<image>``), a Qwen2
    inside."""
    import torch
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessorPil,
        LlavaOnevisionProcessor,
    )

    tokenizer = train_tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"],
                                LLAVA_ONEVISION_TEMPLATE, eos="<|im_end|>", pad="<|endoftext|>")
    image, video = _ids(tokenizer, "<image>", "<video>")
    pinpoints = [[32, 32], [32, 64], [64, 32], [64, 64]]
    vision = {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 32, "patch_size": 16,
              "vision_use_head": False}
    config = LlavaOnevisionConfig(vision_config=vision, text_config={"model_type": "qwen2", **_text_config(
        tokenizer, turn_end="<|im_end|>")}, image_token_index=image, video_token_index=video,
        vision_feature_select_strategy="full", vision_feature_layer=-1, image_grid_pinpoints=pinpoints,
        vision_aspect_ratio="anyres_max_9", tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(config)
    images = LlavaOnevisionImageProcessorPil(size={"height": 32, "width": 32}, image_grid_pinpoints=pinpoints,
                                             image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor = LlavaOnevisionProcessor(image_processor=images, tokenizer=tokenizer, video_processor=None,
                                        num_image_tokens=4, vision_feature_select_strategy="full",
                                        vision_aspect_ratio="anyres_max_9", chat_template=LLAVA_ONEVISION_TEMPLATE)
    return _save(folder, model, processor, _generation_config(tokenizer, "<|im_end|>", "<|endoftext|>"))


def _build_idefics(folder: Path, seed: int, *, smol: bool) -> Path:
    import torch
    import transformers

    family = "SmolVLM" if smol else "Idefics3"
    Config, Model, Images, Processor = (getattr(transformers, family + suffix) for suffix in (
        "Config", "ForConditionalGeneration", "ImageProcessorPil", "Processor"))
    if smol:
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *IDEFICS_IMAGE_TOKENS, *ROW_COL_TOKENS]
        template, bos, eos, pad = SMOLVLM_TEMPLATE, "<|im_start|>", "<end_of_utterance>", "<|im_end|>"
        stops = ["<end_of_utterance>"]
    else:
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", *IDEFICS_IMAGE_TOKENS,
                    *ROW_COL_TOKENS]
        template, bos, eos = IDEFICS3_TEMPLATE, "<|begin_of_text|>", "<|end_of_text|>"
        pad = "<|reserved_special_token_0|>"
        stops = ["<end_of_utterance>", "<|end_of_text|>"]
    tokenizer = train_tokenizer(specials, template, bos=bos, eos=eos, pad=pad)
    image = _ids(tokenizer, "<image>")[0]
    # 32 px crops of 8 px patches, pixel-shuffled by 2: 4 tokens a crop; images up to 64 px split in up to 2 x 2.
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}
    config = Config(vision_config=vision, text_config={"model_type": "llama", **_text_config(
        tokenizer, turn_end="<end_of_utterance>")}, image_token_id=image, scale_factor=2,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = Model(config)
    images = Images(size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=True)
    extra = {"video_processor": None} if smol else {}
    processor = Processor(image_processor=images, tokenizer=tokenizer, image_seq_len=4, chat_template=template,
                          **extra)
    return _save(folder, model, processor, _generation_config(tokenizer, *stops))


def build_idefics3(folder: Path, seed: int = 0) -> Path:
    """Idefics3: a SigLIP-like tower (32 px crops, patch 8), pixel shuffle 2 (4 ``<image>`` a crop), image
    splitting on (its default): a 48x40 image is 2 x 2 crops plus the global one, 20 ``<image>``."""
    return _build_idefics(folder, seed, smol=False)


def build_smolvlm(folder: Path, seed: int = 0) -> Path:
    """SmolVLM: as :func:`build_idefics3`, with SmolLM's ``<|im_start|>`` tokens and SmolVLM's processor."""
    return _build_idefics(folder, seed, smol=True)


def build_gemma3(folder: Path, seed: int = 0) -> Path:
    """Gemma 3: a SigLIP tower (32 px, patch 8: 4 x 4 patches), average-pooled to 4 ``<image_soft_token>``, a
    Gemma 3 text model (one sliding, one full attention layer)."""
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessorPil, Gemma3Processor

    tokenizer = _gemma3_tokenizer(GEMMA3_TEMPLATE, images=True)
    boi, eoi, image = _ids(tokenizer, "<start_of_image>", "<end_of_image>", "<image_soft_token>")
    vision = {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 32, "patch_size": 8,
              "vision_use_head": False}
    config = Gemma3Config(text_config=_gemma3_text_config(tokenizer), vision_config=vision, mm_tokens_per_image=4,
                          boi_token_index=boi, eoi_token_index=eoi, image_token_index=image,
                          tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(config)
    images = Gemma3ImageProcessorPil(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor = Gemma3Processor(image_processor=images, tokenizer=tokenizer, image_seq_length=4,
                                chat_template=GEMMA3_TEMPLATE)
    return _save(folder, model, processor, _generation_config(tokenizer, "<end_of_turn>", "<eos>"))


def _gemma3_tokenizer(template: str, *, images: bool):
    named = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
    return train_tokenizer(GEMMA3_TOKENS, template, bos="<bos>", eos="<eos>", pad="<pad>", unk="<unk>",
                           named=named if images else None, prepend_bos=True)


def _gemma3_text_config(tokenizer) -> dict:
    return _text_config(tokenizer, turn_end="<end_of_turn>", head_dim=16, query_pre_attn_scalar=16,
                        sliding_window=128, layer_types=["sliding_attention", "full_attention"],
                        eos_token_id=_ids(tokenizer, "<eos>", "<end_of_turn>"))


# --------------------------------------------------------------------------------------------------------------------
# Text-only chat families
# --------------------------------------------------------------------------------------------------------------------

def build_qwen3(folder: Path, seed: int = 0) -> Path:
    """Qwen3 (text): ChatML, ``<think>``/``</think>`` as plain added tokens, q/k norms, head_dim 16."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = train_tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>"], QWEN3_TEMPLATE, eos="<|im_end|>",
                                pad="<|endoftext|>", plain_tokens=["<think>", "</think>"])
    config = Qwen3Config(**_text_config(tokenizer, turn_end="<|im_end|>", head_dim=16))
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    return _save(folder, model, tokenizer, _generation_config(tokenizer, "<|im_end|>", "<|endoftext|>"))


def build_gemma3_text(folder: Path, seed: int = 0) -> Path:
    """Gemma 3 (text, as Gemma 3 1B): Gemma 3's tokens and template, ``Gemma3ForCausalLM``."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tokenizer = _gemma3_tokenizer(GEMMA3_TEMPLATE, images=False)
    config = Gemma3TextConfig(**_gemma3_text_config(tokenizer))
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(config)
    return _save(folder, model, tokenizer, _generation_config(tokenizer, "<end_of_turn>", "<eos>"))


FAMILIES: dict[str, Callable[[Path], Path]] = {
    "qwen2_vl": build_qwen2_vl, "qwen2_5_vl": build_qwen2_5_vl, "qwen3_vl": build_qwen3_vl, "llava": build_llava,
    "llava_onevision": build_llava_onevision, "idefics3": build_idefics3, "smolvlm": build_smolvlm,
    "gemma3": build_gemma3,
}
TEXT_FAMILIES: dict[str, Callable[[Path], Path]] = {"qwen3": build_qwen3, "gemma3_text": build_gemma3_text}


if __name__ == "__main__":  # python -m tests.tiny_vlms: build each family, load it, generate and backpropagate once
    import tempfile

    import numpy as np
    from PIL import Image
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

    image = Image.fromarray(np.random.RandomState(0).randint(0, 255, (40, 48, 3), dtype=np.uint8))
    system = {"role": "system", "content": "You solve problems."}
    with tempfile.TemporaryDirectory() as root:
        for name, build in FAMILIES.items():
            processor = AutoProcessor.from_pretrained(build(Path(root) / name))
            model = AutoModelForImageTextToText.from_pretrained(Path(root) / name)
            conversation = [system, {"role": "user", "content": [{"type": "image", "image": image},
                                                                 {"type": "text", "text": "What is 7 + 5?"}]}]
            text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
            inputs = processor(text=[text], images=[[image]], return_tensors="pt", add_special_tokens=False)
            model.generate(**inputs, max_new_tokens=5, do_sample=False)
            model.train()
            model(**inputs, labels=inputs["input_ids"]).loss.backward()
            print(name, "ok:", sorted(inputs))
        for name, build in TEXT_FAMILIES.items():
            tokenizer = AutoTokenizer.from_pretrained(build(Path(root) / name))
            model = AutoModelForCausalLM.from_pretrained(Path(root) / name)
            inputs = tokenizer.apply_chat_template([system, {"role": "user", "content": "What is 7 + 5?"}],
                                                   add_generation_prompt=True, return_dict=True, return_tensors="pt")
            model.generate(**inputs, max_new_tokens=5, do_sample=False)
            model.train()
            model(**inputs, labels=inputs["input_ids"]).loss.backward()
            print(name, "ok")
