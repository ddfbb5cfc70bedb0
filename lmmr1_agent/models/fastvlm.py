"""A Llama-family language model inside ``FastVlmForConditionalGeneration`` with a fresh BatchNorm ResNet tower.

Why this tower: a from-scratch ResNet (BatchNorm basic blocks, 2.4 M parameters) learned to read the
VisualMath figures' labels (clock, counting, shaded_fraction, bar_chart) to ~100 % held-out within a few
CPU-minutes at 112 px, where the Qwen2.5-VL tower stayed at chance on the clock (``python -m
lmmr1_agent.align.probe --tower resnet``). FastVLM holds any ``AutoModel`` tower whose ``last_hidden_state``
is ``(batch, channels, H, W)``: each of the H×W cells (7×7 = 49 at 112 px, stride 16) becomes one image token
through a two-layer GELU projector, so the model saves and loads with ``AutoModelForImageTextToText``.
Pixels are ``x / 127.5 - 1`` (:func:`image_pixels`), with no image processor.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lmmr1_agent.models.graft import chatml_template, copy_language_weights

#: The image token the tokenizer gains; a prompt carries :func:`image_seq_length` of them per image.
IMAGE_TOKEN = "<image>"
#: The ResNet tower the probe measured: stem to 1/4, stages at strides 1, 2, 2 (1/16 overall).
RESNET_TOWER = {"embedding_size": 32, "hidden_sizes": [64, 128, 256], "depths": [1, 1, 2]}
#: Pixels per image token along each side (the tower's total stride).
TOKEN_STRIDE = 16
DEFAULT_IMAGE_SIZE = 112


def resnet_vision_config(tower: dict | None = None):
    """The ``ResNetConfig`` of the vision tower (``tower`` overrides :data:`RESNET_TOWER`'s keys)."""
    from transformers import ResNetConfig

    shape = {**RESNET_TOWER, **(tower or {})}
    config = ResNetConfig(num_channels=3, layer_type="basic", hidden_act="relu", downsample_in_first_stage=False,
                          **shape)
    config.hidden_size = shape["hidden_sizes"][-1]  # FastVLM's projector reads vision_config.hidden_size
    return config


def image_seq_length(image_size: int) -> int:
    """Image tokens per ``image_size``-pixel square image: ``(image_size / 16)²`` (49 at 112 px)."""
    if image_size < TOKEN_STRIDE or image_size % TOKEN_STRIDE:
        raise ValueError(f"image size {image_size} px: the ResNet tower needs a positive multiple of {TOKEN_STRIDE}")
    return (image_size // TOKEN_STRIDE) ** 2


def image_pixels(images: Sequence, image_size: int = DEFAULT_IMAGE_SIZE) -> torch.Tensor:
    """``(images, 3, image_size, image_size)`` float32 pixels in [-1, 1] from (H, W, 3) uint8 arrays or PIL images.

    Images of another size are resized (bilinear) to ``image_size`` square, as the tower's token count assumes.
    """
    from PIL import Image

    arrays = []
    for index, image in enumerate(images):
        picture = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
        if picture.mode != "RGB":
            picture = picture.convert("RGB")
        if picture.size != (image_size, image_size):
            picture = picture.resize((image_size, image_size), Image.Resampling.BILINEAR)
        array = np.asarray(picture)
        if array.shape != (image_size, image_size, 3):
            raise ValueError(f"image {index}: expected an RGB picture, got an array of shape {array.shape}")
        arrays.append(array)
    if not arrays:
        return torch.zeros((0, 3, image_size, image_size))
    stacked = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()
    return (stacked / 127.5 - 1.0).contiguous()


def build_resnet_vlm(text_model, tokenizer, *, image_size: int = DEFAULT_IMAGE_SIZE, tower: dict | None = None,
                     seed: int = 0):
    """``(FastVlmForConditionalGeneration, tokenizer)`` carrying ``text_model``'s language weights and a fresh
    ResNet tower.

    ``text_model`` is a causal language model (SmolLM2/Llama, Qwen2, ...) or the folder it was saved in. The
    tokenizer gains :data:`IMAGE_TOKEN` (its embedding starts at the mean embedding) and a ChatML template writing
    one :data:`IMAGE_TOKEN` per image part; text-only prompts get the text model's logits. The tower and
    projector start random (seeded by ``seed``): teaching them to see is the alignment stage's job.
    """
    from transformers import AutoModelForCausalLM, FastVlmConfig, FastVlmForConditionalGeneration

    if isinstance(text_model, (str, Path)):
        text_model = AutoModelForCausalLM.from_pretrained(text_model, local_files_only=True)
    tokens = image_seq_length(image_size)
    tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
    tokenizer.chat_template = chatml_template(IMAGE_TOKEN)
    image_token = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    text_config = text_model.config.to_dict()
    text_config["vocab_size"] = max(len(tokenizer), text_model.config.vocab_size)
    text_config["pad_token_id"] = tokenizer.pad_token_id
    config = FastVlmConfig(vision_config=resnet_vision_config(tower), text_config=text_config,
                           image_token_index=image_token, image_seq_length=tokens, vision_feature_layer=-1,
                           vision_feature_select_strategy="full", projector_hidden_act="gelu",
                           tie_word_embeddings=text_model.config.tie_word_embeddings)
    config.lmmr1_image_size = image_size  # the square side image_pixels feeds; image_seq_length follows from it
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = FastVlmForConditionalGeneration(config).to(torch.float32)
    copy_language_weights(text_model, model)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = text_model.config.eos_token_id
    return model, tokenizer



#: The module prefixes (under ``model.model``) of the vision tower and the projector.
VISION_PREFIXES = ("vision_tower.", "multi_modal_projector.")


def load_vision_weights(model, weights: Path) -> dict[str, torch.Tensor]:
    """Load the tower (with its batch-norm statistics) and the projector from an alignment's safetensors file
    ``weights`` (names relative to ``model.model``) into ``model``, strictly; return the file's other entries.

    A tower or projector that does not fit this model (another tower shape or image size) is a ValueError.
    """
    from safetensors.torch import load_file

    state = load_file(str(weights))
    vision = {k: v for k, v in state.items() if k.startswith(VISION_PREFIXES)}
    expected = {k for k in model.model.state_dict() if k.startswith(VISION_PREFIXES)}
    if set(vision) != expected:
        raise ValueError(f"{weights} does not fit this VLM: missing {sorted(expected - set(vision))[:3]}, "
                         f"unexpected {sorted(set(vision) - expected)[:3]}")
    model.model.load_state_dict(vision, strict=False)
    return {k: v for k, v in state.items() if k not in vision}


def load_aligned_weights(model, weights: Path) -> None:
    """Put shipped alignment weights into a fresh :func:`build_resnet_vlm` model.

    ``weights`` hold the tower and the projector (:func:`load_vision_weights`) and low-rank updates of language
    weights (``<weight>.lora_up`` (out, r) and ``<weight>.lora_down`` (r, in)), added as ``up @ down``. A file
    that does not fit is a ValueError.
    """
    rest = load_vision_weights(model, weights)
    stray = sorted(k for k in rest if not k.endswith((".lora_up", ".lora_down")))
    if stray:
        raise ValueError(f"{weights} does not fit this VLM: unexpected {stray[:3]}")
    try:
        with torch.no_grad():
            for key in sorted(k for k in rest if k.endswith(".lora_up")):
                name = key[: -len(".lora_up")]
                weight = model.model.get_parameter(name)
                weight.add_(rest[key].float() @ rest[f"{name}.lora_down"].float())
    except (RuntimeError, AttributeError, KeyError) as exc:
        raise ValueError(f"{weights} does not fit this VLM: {exc}") from None


def processor(tokenizer, config):
    """The ``LlavaProcessor`` of a :func:`build_resnet_vlm` model, so ``AutoProcessor`` loads its folder: a PIL CLIP
    image processor that squashes each image to the built square (bilinear) and scales it to [-1, 1], exactly
    :func:`image_pixels` (tested), and one ``<image>`` expanded to ``image_seq_length`` tokens (patch 16)."""
    from transformers import CLIPImageProcessorPil, LlavaProcessor

    side = int(config.lmmr1_image_size)
    images = CLIPImageProcessorPil(size={"height": side, "width": side}, do_center_crop=False, resample=2,
                                   do_rescale=True, rescale_factor=1 / 255, do_normalize=True, image_mean=[0.5] * 3,
                                   image_std=[0.5] * 3, do_convert_rgb=True)
    return LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=TOKEN_STRIDE,
                          vision_feature_select_strategy="full", image_token=IMAGE_TOKEN, num_additional_image_tokens=0,
                          chat_template=tokenizer.chat_template)
