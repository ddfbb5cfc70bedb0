"""Hugging Face agents: any chat causal LM, and image-text-to-text models through small adapters.

An adapter turns chat messages into model inputs. ``TextAdapter`` serves every causal LM with a chat
template; ``QwenVLAdapter`` serves Qwen2-VL and Qwen2.5-VL (and the embedded graft). Another VLM family
(SmolVLM/Idefics3, LLaVA, Gemma-3) is one more adapter: ``prepare(conversations) -> model inputs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from lmmr1_agent.agents.base import Agent, Response
from lmmr1_agent.models.embedded import EMBEDDED, resolve_model
from lmmr1_env.types import Message

#: Default image pixel limits for Qwen-style processors (the paper's range is 4·28² to 16384·28²).
DEFAULT_MIN_PIXELS = 4 * 28 * 28
DEFAULT_MAX_PIXELS = 256 * 28 * 28


def _has_images(conversation: Sequence[Message]) -> bool:
    return any(isinstance(m["content"], list) and any(p.get("type") in ("image", "image_url") for p in m["content"])
               for m in conversation)


def _as_pil(image: Any) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, np.ndarray):
        return Image.fromarray(image.astype(np.uint8)).convert("RGB")
    raise TypeError(f"image parts must hold a PIL image or an array, got {type(image).__name__}")


class TextAdapter:
    """Chat causal LMs: the tokenizer's chat template over string contents. Images are an error."""

    def __init__(self, model_name: str, tokenizer):
        self.model_name = model_name
        self.tokenizer = tokenizer
        if tokenizer.chat_template is None:
            raise ValueError(f"{model_name} has no chat template: lmmr1 agents need a chat (instruct) model")

    def prompt_text(self, conversation: Sequence[Message]) -> str:
        if _has_images(conversation):
            raise ValueError(f"{self.model_name} is a text-only model but this environment sends images; use an "
                             "image-text-to-text model (e.g. Qwen/Qwen2.5-VL-3B-Instruct, or --agent embedded-vl)")
        flat = [{"role": m["role"], "content": m["content"] if isinstance(m["content"], str) else
                 "".join(p.get("text", "") for p in m["content"])} for m in conversation]
        return self.tokenizer.apply_chat_template(flat, add_generation_prompt=True, tokenize=False)

    def prepare(self, conversations: Sequence[Sequence[Message]]) -> dict[str, torch.Tensor]:
        texts = [self.prompt_text(c) for c in conversations]
        return self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)


class QwenVLAdapter(TextAdapter):
    """Qwen2-VL / Qwen2.5-VL: each image becomes ``grid_t·grid_h·grid_w / merge²`` ``<|image_pad|>`` tokens."""

    def __init__(self, model_name: str, tokenizer, config, *, min_pixels: int, max_pixels: int):
        from transformers import Qwen2VLImageProcessorPil

        super().__init__(model_name, tokenizer)
        vision = config.vision_config
        self.merge = vision.spatial_merge_size
        self.image_processor = Qwen2VLImageProcessorPil(
            min_pixels=min_pixels, max_pixels=max_pixels, patch_size=vision.patch_size,
            temporal_patch_size=vision.temporal_patch_size, merge_size=vision.spatial_merge_size)
        self.image_token = tokenizer.convert_ids_to_tokens(config.image_token_id)

    def prompt_text(self, conversation: Sequence[Message]) -> str:
        return self.tokenizer.apply_chat_template(list(conversation), add_generation_prompt=True, tokenize=False)

    def prepare(self, conversations: Sequence[Sequence[Message]]) -> dict[str, torch.Tensor]:
        texts, images = [], []
        for conversation in conversations:
            texts.append(self.prompt_text(conversation))
            images.extend(_as_pil(p["image"]) for m in conversation if isinstance(m["content"], list)
                          for p in m["content"] if p.get("type") == "image")
        extra: dict[str, torch.Tensor] = {}
        if images:
            processed = self.image_processor(images=images, return_tensors="pt")
            extra = {"pixel_values": processed["pixel_values"], "image_grid_thw": processed["image_grid_thw"]}
            counts = iter((processed["image_grid_thw"].prod(dim=-1) // self.merge**2).tolist())
            expanded = []
            for text in texts:
                pieces = text.split(self.image_token)
                out = pieces[0]
                for piece in pieces[1:]:
                    out += self.image_token * next(counts) + piece
                expanded.append(out)
            texts = expanded
        inputs = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        return {**inputs, **extra}


VL_MODEL_TYPES = {"qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration", "qwen2_vl": "Qwen2VLForConditionalGeneration"}


class HFAgent(Agent):
    """A Hugging Face model as an agent; returns token ids and sampling log-probs, so it can be trained.

    ``model``: a local folder, a hub id, or an embedded name (``embedded``, ``embedded-vl``).
    ``temperature=0`` decodes greedily. The demonstration exchange is sent by default for the embedded
    model (a 135M model never finds the answer format without it) and not for others.
    """

    trainable = True

    def __init__(self, model: str = "embedded", *, temperature: float = 0.0, max_new_tokens: int = 256,
                 seed: int = 0, demonstration: bool | None = None, min_pixels: int = DEFAULT_MIN_PIXELS,
                 max_pixels: int = DEFAULT_MAX_PIXELS, dtype: str = "float32", device: str = "cpu"):
        import transformers
        from transformers import AutoConfig, AutoTokenizer

        self.name = model
        path = resolve_model(model)
        self.uses_demonstration = (model in EMBEDDED) if demonstration is None else demonstration
        self.temperature, self.max_new_tokens, self.device = float(temperature), int(max_new_tokens), device
        torch.manual_seed(seed)  # generate() samples from torch's global generator
        try:
            config = AutoConfig.from_pretrained(path)
        except OSError as exc:
            raise ValueError(f"cannot load model {model!r}: {exc}") from None
        tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        torch_dtype = getattr(torch, dtype)
        if config.model_type in VL_MODEL_TYPES:
            model_class = getattr(transformers, VL_MODEL_TYPES[config.model_type])
            self.model = model_class.from_pretrained(path, dtype=torch_dtype)
            self.adapter: TextAdapter = QwenVLAdapter(model, tokenizer, config, min_pixels=min_pixels,
                                                      max_pixels=max_pixels)
            text_config = config.text_config
        else:
            self.model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
            self.adapter = TextAdapter(model, tokenizer)
            text_config = config
        self.model.to(device).eval()
        self.tokenizer = tokenizer
        self.context = int(getattr(text_config, "max_position_embeddings", 0) or 1 << 30)
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos if eos is not None else tokenizer.eos_token_id])

    @torch.no_grad()
    def act(self, conversations: Sequence[list[Message]], infos: Sequence[dict]) -> list[Response]:
        inputs = {k: v.to(self.device) for k, v in self.adapter.prepare(conversations).items()}
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        for i, length in enumerate(lengths):
            if length + self.max_new_tokens > self.context:
                raise ValueError(f"prompt {i} is {length} tokens (images included); with max_new_tokens="
                                 f"{self.max_new_tokens} it exceeds {self.name}'s context of {self.context}: "
                                 "lower max_pixels, the image size or max_new_tokens")
        sample = self.temperature > 0
        out = self.model.generate(
            **inputs, do_sample=sample, temperature=self.temperature if sample else None, top_p=1.0 if sample else None,
            top_k=0 if sample else None, max_new_tokens=self.max_new_tokens, return_dict_in_generate=True,
            output_scores=True, pad_token_id=self.tokenizer.pad_token_id)
        new_tokens = out.sequences[:, inputs["input_ids"].shape[1]:]
        logprobs = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        responses = []
        prompts = [ids[mask.bool()].tolist() for ids, mask in zip(inputs["input_ids"], inputs["attention_mask"])]
        for row, row_logprobs, prompt_ids in zip(new_tokens.tolist(), logprobs.tolist(), prompts):
            end = next((k + 1 for k, t in enumerate(row) if t in self.eos_ids), None)
            ids = row[:end] if end is not None else row
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            responses.append(Response(text=text, token_ids=ids, logprobs=row_logprobs[:len(ids)],
                                      truncated=end is None, prompt_token_ids=prompt_ids))
        return responses
