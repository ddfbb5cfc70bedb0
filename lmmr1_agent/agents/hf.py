"""Hugging Face agents: any chat causal LM, and image-text-to-text models through small adapters.

An adapter turns chat messages into model inputs, the same for sampling and for the learner. ``TextAdapter``
serves every causal LM with a chat template; ``ProcessorAdapter`` every image-text-to-text model through its own
chat template and ``AutoProcessor``; ``QwenVLAdapter`` (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, the Qwen graft) and
``FastVlmAdapter`` (the embedded ``embedded-vl``) are the families with code of their own. The model, its adapter
and the sampling rules are the :class:`~lmmr1_agent.policy.Policy` the learner shares.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import GenerationConfig

from lmmr1_agent.agents.base import Agent, Response
from lmmr1_agent.agents.processors import load_processor
from lmmr1_agent.models.embedded import EMBEDDED, resolve_model
from lmmr1_agent.models.saving import DEMONSTRATION_ATTRIBUTE
from lmmr1_agent.policy import Policy
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
    """Chat causal LMs: the tokenizer's chat template over string contents. Images are an error.

    ``prepare`` gives left-padded model inputs. A conversation with a prefix (the token ids of its earlier turns,
    exactly as generated) is encoded as that prefix plus only what follows it: the template's close of the last
    response and the newest user message (``history="full"`` as one growing token sequence).
    """

    def __init__(self, model_name: str, tokenizer):
        self.model_name = model_name
        self.tokenizer = tokenizer
        if tokenizer.chat_template is None:
            raise ValueError(f"{model_name} has no chat template: lmmr1 agents need a chat (instruct) model")
        self._closing: str | None = None

    def render(self, conversation: Sequence[Message], add_generation_prompt: bool) -> str:
        if _has_images(conversation):
            raise ValueError(f"{self.model_name} is a text-only model but this environment sends images; use an "
                             "image-text-to-text model (e.g. Qwen/Qwen2.5-VL-3B-Instruct, or --agent embedded-vl)")
        flat = [{"role": m["role"], "content": m["content"] if isinstance(m["content"], str) else
                 "".join(p.get("text", "") for p in m["content"])} for m in conversation]
        return self.tokenizer.apply_chat_template(flat, add_generation_prompt=add_generation_prompt, tokenize=False)

    def prompt_text(self, conversation: Sequence[Message]) -> str:
        return self.render(conversation, add_generation_prompt=True)

    def response_closing(self) -> str:
        """What the chat template writes after an assistant message's content (ChatML: ``<|im_end|>\\n``)."""
        if self._closing is None:
            probe = "\x00lmmr1-probe\x00"
            text = self.render([{"role": "user", "content": "x"}, {"role": "assistant", "content": probe}], False)
            self._closing = text[text.index(probe) + len(probe):]
        return self._closing

    def continuation_text(self, conversation: Sequence[Message], prefix: Sequence[int]) -> str:
        """The text that follows ``prefix`` (the previous turn's prompt and response tokens): the rest of the
        template's close of that response, the newest user message and the generation prompt."""
        if len(conversation) < 2 or conversation[-1]["role"] != "user" or conversation[-2]["role"] != "assistant":
            raise ValueError("a continued conversation must end with an assistant response and then a user message")
        before = self.render(conversation[:-1], add_generation_prompt=False)
        full = self.render(conversation, add_generation_prompt=True)
        if not full.startswith(before):
            raise ValueError(f"{self.model_name}'s chat template rewrites earlier turns when one is added, so an "
                             "episode cannot be one growing token sequence: use history 'last'")
        closing = self.response_closing()
        last = self.tokenizer.convert_ids_to_tokens(int(prefix[-1]))
        if int(prefix[-1]) in self.tokenizer.all_special_ids and closing.startswith(last):
            closing = closing[len(last):]  # the response ended with the template's own end token (EOS)
        return closing + full[len(before):]

    def texts(self, conversations: Sequence[Sequence[Message]],
              prefixes: Sequence[Sequence[int] | None]) -> list[str]:
        return [self.prompt_text(c) if p is None else self.continuation_text(c, p)
                for c, p in zip(conversations, prefixes)]

    def prepare(self, conversations: Sequence[Sequence[Message]],
                prefix_ids: Sequence[Sequence[int] | None] | None = None) -> dict[str, torch.Tensor]:
        prefixes = list(prefix_ids) if prefix_ids is not None else [None] * len(conversations)
        return self.tokenize(self.texts(conversations, prefixes), prefixes)

    def image_inputs(self, conversations: Sequence[Sequence[Message]], input_ids: torch.Tensor) -> dict:
        """The model inputs beside ``input_ids`` that carry the conversations' images: none for a text model."""
        return {}

    def tokenize(self, texts: Sequence[str], prefixes: Sequence[Sequence[int] | None]) -> dict[str, torch.Tensor]:
        """Each prefix followed by its text's tokens, left-padded to one ``(batch, seq)`` tensor."""
        encoded = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return self.tokenize_ids([list(p or []) + list(ids) for p, ids in zip(prefixes, encoded)])

    def tokenize_ids(self, rows: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        """Token id rows left-padded to one ``(batch, seq)`` tensor, with their attention mask."""
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            if row:
                ids[i, width - len(row):] = torch.tensor(row)
                attention[i, width - len(row):] = 1
        return {"input_ids": ids, "attention_mask": attention}


class ImageAdapter(TextAdapter):
    """Image-text-to-text models: the chat template renders image parts (one marker per image, ``image_token``);
    ``prepare`` also gives the pixel inputs, and ``image_inputs`` the ones that go with the learner's ids."""

    image_token: str

    def render(self, conversation: Sequence[Message], add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(list(conversation), add_generation_prompt=add_generation_prompt,
                                                  tokenize=False)

    def token_types(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Extra per-token inputs the model needs beside ``input_ids`` (none unless a family says so)."""
        return {}

    @staticmethod
    def _images(conversation: Sequence[Message]) -> list[Image.Image]:
        return [_as_pil(p["image"]) for m in conversation if isinstance(m["content"], list)
                for p in m["content"] if p.get("type") == "image"]

    def newest_images(self, text: str, images: list[Image.Image]) -> list[Image.Image]:
        """The images whose markers are in ``text``: all of them, or a continuation's newest ones (its prefix holds
        the tokens of the earlier ones already)."""
        shown = text.count(self.image_token)
        return images[len(images) - shown:] if shown else []


class CountedImageAdapter(ImageAdapter, abc.ABC):
    """Image models whose image token counts the adapter knows (:meth:`process_images`): ``prepare`` expands each
    marker into as many copies as its image has tokens and adds the pixel inputs."""

    @abc.abstractmethod
    def process_images(self, images: list[Image.Image]) -> tuple[dict[str, torch.Tensor], list[int]]:
        """The model's pixel inputs for ``images`` and the number of image tokens each one takes."""

    def prepare(self, conversations: Sequence[Sequence[Message]],
                prefix_ids: Sequence[Sequence[int] | None] | None = None) -> dict[str, torch.Tensor]:
        prefixes = list(prefix_ids) if prefix_ids is not None else [None] * len(conversations)
        texts = self.texts(conversations, prefixes)
        per_conversation = [self._images(c) for c in conversations]
        images = [image for row in per_conversation for image in row]
        if not images:
            return self.tokenize(texts, prefixes)
        # The pixel inputs hold every image of every conversation; a continuation's prefix already holds the image
        # tokens of its earlier images, so only its newest images' markers are expanded here.
        pixels, counts = self.process_images(images)
        expanded, at = [], 0
        for text, row in zip(texts, per_conversation):
            mine, at = counts[at:at + len(row)], at + len(row)
            pieces = text.split(self.image_token)
            shown = mine[len(mine) - (len(pieces) - 1):] if len(pieces) > 1 else []
            expanded.append(pieces[0] + "".join(self.image_token * n + piece for n, piece in zip(shown, pieces[1:])))
        inputs = {**self.tokenize(expanded, prefixes), **pixels}
        return {**inputs, **self.token_types(inputs["input_ids"])}

    def image_inputs(self, conversations: Sequence[Sequence[Message]], input_ids: torch.Tensor) -> dict:
        images = [image for c in conversations for image in self._images(c)]
        if not images:
            return {}
        return {**self.process_images(images)[0], **self.token_types(input_ids)}


class QwenVLAdapter(CountedImageAdapter):
    """Qwen2-VL, Qwen2.5-VL and Qwen3-VL: each image becomes ``grid_t·grid_h·grid_w / merge²`` ``<|image_pad|>``
    tokens, between ``min_pixels`` and ``max_pixels`` pixels. The folder's own image processor (its patch size and
    normalisation: Qwen3-VL's differ from Qwen2.5-VL's) is used where it has one; a folder without one (the
    embedded graft) gets the one its vision config describes."""

    def __init__(self, model_name: str, tokenizer, config, *, min_pixels: int, max_pixels: int,
                 path: str | None = None):
        from transformers import Qwen2VLImageProcessorPil

        super().__init__(model_name, tokenizer)
        vision = config.vision_config
        self.merge = vision.spatial_merge_size
        bounds = {"min_pixels": min_pixels, "max_pixels": max_pixels}
        #: The folder's processor (saved with the checkpoints), or None where it has none.
        self.processor = load_processor(path, tokenizer, **bounds) if path is not None else None
        self.image_processor = getattr(self.processor, "image_processor", None)
        if self.image_processor is None:
            self.image_processor = Qwen2VLImageProcessorPil(
                **bounds, patch_size=vision.patch_size, temporal_patch_size=vision.temporal_patch_size,
                merge_size=vision.spatial_merge_size)
        self.image_token = tokenizer.convert_ids_to_tokens(config.image_token_id)
        self.image_token_id, self.video_token_id = config.image_token_id, config.video_token_id
        #: Qwen2.5-VL's 3-D (time, height, width) positions for image tokens, unless the model says its images
        #: take plain sequence positions (the embedded graft: its language model only knows 1-D RoPE).
        self.multimodal_positions = getattr(config, "lmmr1_image_positions", "mrope") != "sequence"

    def process_images(self, images: list[Image.Image]) -> tuple[dict[str, torch.Tensor], list[int]]:
        processed = self.image_processor(images=images, return_tensors="pt")
        counts = (processed["image_grid_thw"].prod(dim=-1) // self.merge**2).tolist()
        return {"pixel_values": processed["pixel_values"], "image_grid_thw": processed["image_grid_thw"]}, counts

    def token_types(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """``mm_token_type_ids`` (image 1, video 2, text 0): without them Qwen2.5-VL gives image tokens 1-D
        positions instead of their 3-D multimodal RoPE ones. Empty for models that want sequence positions."""
        if not self.multimodal_positions:
            return {}
        return {"mm_token_type_ids": (input_ids == self.image_token_id).int()
                + 2 * (input_ids == self.video_token_id).int()}


class FastVlmAdapter(CountedImageAdapter):
    """FastVLM with a convolutional tower (the embedded ``embedded-vl``): every image is resized to the square the
    tower was built for and becomes ``image_seq_length`` ``<image>`` tokens (one per cell of its last feature map).
    """

    def __init__(self, model_name: str, tokenizer, config):
        from lmmr1_agent.models.fastvlm import TOKEN_STRIDE

        super().__init__(model_name, tokenizer)
        if config.vision_config.model_type != "resnet":
            raise ValueError(f"{model_name}: FastVLM with a {config.vision_config.model_type!r} vision tower is not "
                             "supported (lmmr1 drives FastVLM with the ResNet tower of lmmr1_agent.models.fastvlm)")
        self.image_token = tokenizer.convert_ids_to_tokens(config.image_token_id)
        self.tokens_per_image = int(config.image_seq_length)
        self.image_size = int(getattr(config, "lmmr1_image_size", 0) or TOKEN_STRIDE * math.isqrt(
            self.tokens_per_image))

    def process_images(self, images: list[Image.Image]) -> tuple[dict[str, torch.Tensor], list[int]]:
        from lmmr1_agent.models.fastvlm import image_pixels

        return {"pixel_values": image_pixels(images, self.image_size)}, [self.tokens_per_image] * len(images)


class ProcessorAdapter(ImageAdapter):
    """Any image-text-to-text model with an ``AutoProcessor`` (LLaVA, LLaVA-OneVision, Idefics3 / SmolVLM, Gemma 3,
    Qwen3-VL, ...): the model's own chat template renders the conversation with one marker per image, and the
    model's own processor expands each marker and makes the pixel inputs, so a new family needs no code here.

    The processor also says which inputs are per token (Qwen's ``mm_token_type_ids``, Gemma 3's
    ``token_type_ids``): :meth:`token_types` rebuilds them from any ids with the processor's own rule, so the
    learner's sequences (prompt and response ids) get the same ones the sampler's prompts got.
    """

    def __init__(self, model_name: str, processor, config):
        tokenizer = processor.tokenizer
        template = getattr(processor, "chat_template", None) or tokenizer.chat_template
        if template is None:
            raise ValueError(f"{model_name} has no chat template: lmmr1 agents need a chat (instruct) model")
        tokenizer.chat_template = template
        super().__init__(model_name, tokenizer)
        self.processor = processor
        self.config = config
        probe = Image.new("RGB", (32, 32))
        # The marker the template writes per image is the one the processor expands (Gemma 3: <start_of_image>).
        shown = self.render([{"role": "user", "content": [{"type": "image", "image": probe},
                                                          {"type": "text", "text": "x"}]}], True)
        plain = self.render([{"role": "user", "content": [{"type": "text", "text": "x"}]}], True)
        candidates = [getattr(processor, name, None) for name in ("image_token", "boi_token")]
        markers = [m for m in candidates if isinstance(m, str) and shown.count(m) == plain.count(m) + 1]
        if not markers:
            raise ValueError(f"{model_name}: its chat template writes no image marker its processor knows "
                             f"({', '.join(m for m in candidates if isinstance(m, str)) or 'none'})")
        self.image_token = markers[0]
        kwargs = {"return_tensors": "pt", "add_special_tokens": False}
        one = processor(text=[self.image_token], images=[[probe]], **kwargs)
        two = processor(text=[self.image_token * 2], images=[[probe, probe]], **kwargs)
        shape = tuple(one["input_ids"].shape)
        #: Per-token inputs (besides ids and mask) the processor returns, rebuilt by :meth:`token_types`.
        self.per_token = [k for k, v in one.items() if k not in ("input_ids", "attention_mask")
                          and isinstance(v, torch.Tensor) and tuple(v.shape) == shape]
        #: Whether an image takes the same tokens however many the prompt holds (LLaVA-OneVision: fewer when there
        #: are several), which a growing multi-turn sequence needs: its earlier images' tokens stay as they were.
        image_ids = [getattr(config, "image_token_id", None), getattr(config, "image_token_index", None),
                     *(getattr(processor, "image_token_ids", None) or [])]
        image_ids = torch.tensor([i for i in image_ids if isinstance(i, int)])
        count = lambda out: int(torch.isin(out["input_ids"], image_ids).sum())  # noqa: E731
        self.images_keep_their_tokens = count(two) == 2 * count(one)

    def _encode(self, texts: list[str], images: list[list[Image.Image]]) -> tuple[list[list[int]], dict]:
        """Each text's token ids, its markers expanded by the processor for ``images`` (that text's images), and
        the pixel inputs of them all (empty when there are none)."""
        kwargs = {"return_tensors": "pt", "add_special_tokens": False}
        if all(images) or not any(images):
            out = self.processor(text=texts, images=images if any(images) else None, padding=True, **kwargs)
            ids = [row[mask.bool()].tolist() for row, mask in zip(out["input_ids"], out["attention_mask"])]
            return ids, self._image_part(out)
        ids = [self.processor(text=[t], images=[row] if row else None, **kwargs)["input_ids"][0].tolist()
               for t, row in zip(texts, images)]
        return ids, self.pixels(images)

    def pixels(self, images: list[list[Image.Image]]) -> dict[str, torch.Tensor]:
        """The processor's image inputs (pixels, grids, sizes, masks) for each row's images, in order."""
        if not any(images):
            return {}
        rows = [row for row in images if row] if not all(images) else images
        out = self.processor(text=[self.image_token * len(row) for row in rows], images=rows, return_tensors="pt",
                             padding=True, add_special_tokens=False)
        return self._image_part(out)

    def _image_part(self, out) -> dict[str, torch.Tensor]:
        """A processor output without its per-token entries (ids, mask, token types): the image inputs."""
        return {k: v for k, v in out.items() if k not in ("input_ids", "attention_mask", *self.per_token)}

    def token_types(self, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.per_token:
            return {}
        types = torch.tensor(self.processor.create_mm_token_type_ids(input_ids.tolist()), dtype=torch.long)
        return {key: types for key in self.per_token}

    def prepare(self, conversations: Sequence[Sequence[Message]],
                prefix_ids: Sequence[Sequence[int] | None] | None = None) -> dict[str, torch.Tensor]:
        prefixes = list(prefix_ids) if prefix_ids is not None else [None] * len(conversations)
        texts = self.texts(conversations, prefixes)
        every = [self._images(c) for c in conversations]
        new = [self.newest_images(text, row) for text, row in zip(texts, every)]
        if not self.images_keep_their_tokens and any(p is not None and row for p, row in zip(prefixes, every)):
            raise ValueError(f"{self.model_name}: its processor gives an image fewer tokens when a prompt holds "
                             "several, so an episode with images cannot be one growing token sequence: use "
                             "history 'last' (--history last)")
        ids, pixels = self._encode(texts, new)
        if any(p is not None for p in prefixes):
            pixels = self.pixels(every)
        inputs = self.tokenize_ids([list(p or []) + row for p, row in zip(prefixes, ids)])
        return {**inputs, **pixels, **self.token_types(inputs["input_ids"])}

    def image_inputs(self, conversations: Sequence[Sequence[Message]], input_ids: torch.Tensor) -> dict:
        return {**self.pixels([self._images(c) for c in conversations]), **self.token_types(input_ids)}


class RowSampler:
    """A logits processor that draws each row's next token from that row's own generator.

    Row ``i`` samples from ``softmax(logits / T)`` (greedy where ``T`` is 0) with the banned tokens removed,
    using a generator seeded with ``seeds[i]``: its tokens depend on its seed and its logits only, never on
    the batch it shares. ``logprobs`` collects each step's ``(batch,)`` log-probs of the drawn tokens under
    that same distribution (what the learner recomputes). The returned scores leave one finite entry per row.
    """

    def __init__(self, seeds: Sequence[int], temperature: float, banned: Sequence[int] = ()):
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.temperature = float(temperature)
        self.banned = torch.tensor(list(banned), dtype=torch.long)
        self.logprobs: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.float()
        if len(self.banned):
            scores = scores.index_fill(-1, self.banned.to(scores.device), float("-inf"))
        if self.temperature > 0:
            logp = torch.log_softmax(scores / self.temperature, dim=-1)
            # Inverse CDF with one uniform per row (30x faster than a multinomial per row on a 49k vocabulary);
            # right=True never lands on a zero-probability (banned) token.
            cdf = logp.exp().cumsum(dim=-1)
            uniform = torch.cat([torch.rand(1, generator=g, dtype=cdf.dtype) for g in self.generators])
            tokens = torch.searchsorted(cdf, (uniform.to(cdf.device) * cdf[:, -1])[:, None], right=True)[:, 0]
            tokens = tokens.clamp_(max=cdf.shape[-1] - 1)
        else:
            logp = torch.log_softmax(scores, dim=-1)
            tokens = scores.argmax(dim=-1)
        self.logprobs.append(logp.gather(-1, tokens[:, None])[:, 0])
        return torch.full_like(scores, float("-inf")).scatter_(-1, tokens[:, None], 0.0)


#: Image-text-to-text families the test suite builds and drives end to end (evaluation, multi-turn, training);
#: any other image-text-to-text type with a processor and a chat template goes through :class:`ProcessorAdapter`.
TESTED_VL_FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava", "llava_onevision", "idefics3", "smolvlm", "gemma3",
                      "fast_vlm")
#: Text chat families the test suite trains.
TESTED_TEXT_FAMILIES = ("llama", "qwen2", "qwen3", "gemma3_text")
#: Families with their own adapter: Qwen's image-token counts, pixel bounds and 3-D positions; our FastVLM.
QWEN_VL_TYPES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
#: Config and processor attributes naming a model's vision marker tokens (banned from responses).
_MARKER_ATTRIBUTES = ("image_token_id", "image_token_index", "video_token_id", "video_token_index",
                      "vision_start_token_id", "vision_end_token_id", "boi_token_id", "boi_token_index",
                      "eoi_token_id", "eoi_token_index")
_MARKER_TOKENS = ("image_token", "video_token", "boi_token", "eoi_token", "fake_image_token", "global_image_tag",
                  "vision_start_token", "vision_end_token")


def is_vision_model(config) -> bool:
    """Whether a model config is an image-text-to-text model (one ``AutoModelForImageTextToText`` loads)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    return config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES


def model_class(model_name: str, config):
    """The ``Auto*`` class that loads ``config``'s model, or a ValueError naming its type and the families we drive."""
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if is_vision_model(config):
        return transformers.AutoModelForImageTextToText
    if config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return transformers.AutoModelForCausalLM
    raise ValueError(f"model type {config.model_type!r} ({model_name}) is neither a causal LM nor an "
                     "image-text-to-text model; lmmr1 drives chat causal LMs (tested: "
                     f"{', '.join(TESTED_TEXT_FAMILIES)}) and image-text-to-text models (tested: "
                     f"{', '.join(TESTED_VL_FAMILIES)})")


def image_adapter(model_name: str, path: str, tokenizer, config, *, min_pixels: int, max_pixels: int) -> ImageAdapter:
    """The adapter of an image-text-to-text model: Qwen's and FastVLM's own, else the model's processor."""
    if config.model_type == "fast_vlm":
        return FastVlmAdapter(model_name, tokenizer, config)
    if config.model_type in QWEN_VL_TYPES:
        try:
            return QwenVLAdapter(model_name, tokenizer, config, min_pixels=min_pixels, max_pixels=max_pixels,
                                 path=path)
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{model_name} ({config.model_type}): cannot load its processor: {exc}") from None
    try:
        processor = load_processor(path, tokenizer)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{model_name} ({config.model_type}): cannot load its processor, which lmmr1 needs to "
                         f"turn images into model inputs: {exc}") from None
    if processor is None:
        raise ValueError(f"{model_name} ({config.model_type}) has no processor with an image processor and a "
                         "tokenizer (processor_config.json / preprocessor_config.json), which lmmr1 needs to turn "
                         f"images into model inputs (tested families: {', '.join(TESTED_VL_FAMILIES)})")
    return ProcessorAdapter(model_name, processor, config)


def marker_token_ids(config, adapter: TextAdapter) -> list[int]:
    """The vision marker tokens of a VL model (image, video, image boundaries): one in a response would stand for
    an image that is not there, so the policy never samples them."""
    ids = {getattr(config, name, None) for name in _MARKER_ATTRIBUTES}
    processor = getattr(adapter, "processor", None)
    tokens = {getattr(processor, name, None) for name in _MARKER_TOKENS} | {getattr(adapter, "image_token", None)}
    vocabulary = adapter.tokenizer.get_vocab()
    ids |= {vocabulary.get(t) for t in tokens if isinstance(t, str)}
    return sorted(int(i) for i in ids if isinstance(i, int) and i >= 0)


class SampledAgent(Agent):
    """What every agent that samples a Hugging Face model shares, whatever generates (:class:`HFAgent`, or
    :class:`~lmmr1_agent.agents.vllm_engine.VLLMPolicyAgent`): the model's config, tokenizer and adapter, its
    turn-end tokens, the demonstration rule, the context check and :meth:`respond`'s contract (prompt ids, token
    ids, sampling log-probs, one seed per row). Subclasses build the prompts (:meth:`_prompt_inputs`) and sample
    them (:meth:`_sample`)."""

    trainable = True

    def _load(self, model: str, *, seed: int, max_new_tokens: int, demonstration: bool | None, min_pixels: int,
              max_pixels: int):
        """Read ``model``'s config, tokenizer and adapter; returns ``(path, config, adapter, loader)``, ``loader``
        the ``Auto*`` class of its weights (a model type lmmr1 cannot drive is a ValueError before anything loads)."""
        from transformers import AutoConfig, AutoTokenizer

        self.name = model
        path = resolve_model(model)
        self.max_new_tokens = int(max_new_tokens)
        self._seeds = np.random.default_rng(seed)  # row seeds when the caller gives none
        try:
            config = AutoConfig.from_pretrained(path)
        except OSError as exc:
            raise ValueError(f"cannot load model {model!r}: {exc}") from None
        # A folder the learner saved says whether it was trained with the demonstration (lmmr1_demonstration):
        # without it, a model trained with one loses its answer format.
        if demonstration is None:
            demonstration = model in EMBEDDED or bool(getattr(config, DEMONSTRATION_ATTRIBUTE, False))
        self.uses_demonstration = demonstration
        loader = model_class(model, config)
        tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if is_vision_model(config):
            adapter: TextAdapter = image_adapter(model, path, tokenizer, config, min_pixels=min_pixels,
                                                 max_pixels=max_pixels)
        else:
            adapter = TextAdapter(model, tokenizer)
        text_config = config.get_text_config()
        self.context = int(getattr(text_config, "max_position_embeddings", 0) or 1 << 30)
        return path, config, adapter, loader

    @staticmethod
    def _eos_ids(path: str, tokenizer) -> list[int]:
        """The turn-end tokens: the model's generation config's, read as ``from_pretrained`` reads it for a model
        (``generation_config.json``, else the generation fields of ``config.json``), else the tokenizer's end of
        sequence."""
        try:
            generation = GenerationConfig.from_pretrained(path)
        except OSError:
            generation = GenerationConfig.from_pretrained(path, config_file_name="config.json", _from_model_config=True)
        eos = generation.eos_token_id
        eos = eos if isinstance(eos, list) else [eos if eos is not None else tokenizer.eos_token_id]
        return [int(i) for i in eos]

    def act(self, conversations: Sequence[list[Message]], infos: Sequence[dict]) -> list[Response]:
        return self.respond(conversations, infos)

    def respond(self, conversations: Sequence[list[Message]], infos: Sequence[dict], *,
                prefix_ids: Sequence[list[int] | None] | None = None,
                seeds: Sequence[int] | None = None) -> list[Response]:
        inputs = self._prompt_inputs(conversations, prefix_ids)
        if seeds is None:
            seeds = self._seeds.integers(1 << 62, size=len(conversations)).tolist()
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        over = [i for i, length in enumerate(lengths) if length + self.max_new_tokens > self.context]
        for i in over:
            if prefix_ids is None or prefix_ids[i] is None:
                raise ValueError(f"prompt {i} is {lengths[i]} tokens (images included); with max_new_tokens="
                                 f"{self.max_new_tokens} it exceeds {self.name}'s context of {self.context}: "
                                 "lower max_pixels, the image size or max_new_tokens")
        if over:  # continued episodes that filled the context end there; the others go on
            keep = [i for i in range(len(conversations)) if i not in over]
            replies = [Response(text="", context_full=True) for _ in conversations]
            if keep:
                kept = self.respond([conversations[i] for i in keep], [infos[i] for i in keep],
                                    prefix_ids=[prefix_ids[i] for i in keep], seeds=[seeds[i] for i in keep])
                for i, reply in zip(keep, kept):
                    replies[i] = reply
            return replies
        return self._sample(conversations, inputs, seeds)

    @abc.abstractmethod
    def _prompt_inputs(self, conversations: Sequence[list[Message]],
                       prefix_ids: Sequence[list[int] | None] | None) -> dict[str, torch.Tensor]:
        """The adapter's left-padded inputs of ``conversations``."""

    @abc.abstractmethod
    def _sample(self, conversations: Sequence[list[Message]], inputs: dict[str, torch.Tensor],
                seeds: Sequence[int]) -> list[Response]:
        """One sampled response per row of ``inputs``, row ``i`` drawn with ``seeds[i]``."""


class HFAgent(SampledAgent):
    """A Hugging Face model as an agent; returns token ids and sampling log-probs, so it can be trained.

    ``model``: a local folder, a hub id, or an embedded name (``embedded``, ``embedded-vl``, ``embedded-vl-random``).
    ``temperature=0`` decodes greedily. The demonstration exchange is sent by default for the embedded
    model (a 135M model never finds the answer format without it) and for folders whose config says they were
    built or trained with it (:data:`DEMONSTRATION_ATTRIBUTE`), not for others.
    """

    def __init__(self, model: str = "embedded", *, temperature: float = 0.0, max_new_tokens: int = 256,
                 seed: int = 0, demonstration: bool | None = None, min_pixels: int = DEFAULT_MIN_PIXELS,
                 max_pixels: int = DEFAULT_MAX_PIXELS, dtype: str = "float32", device: str = "cpu",
                 attn_implementation: str | None = None):
        path, config, adapter, loader = self._load(model, seed=seed, max_new_tokens=max_new_tokens,
                                                   demonstration=demonstration, min_pixels=min_pixels,
                                                   max_pixels=max_pixels)
        attention = {"attn_implementation": attn_implementation} if attn_implementation else {}
        network = loader.from_pretrained(path, dtype=getattr(torch, dtype), **attention).to(device).eval()
        #: The model, its adapter and the sampling rules the learner shares (:class:`~lmmr1_agent.policy.Policy`).
        self.policy = Policy(network, adapter, temperature=temperature,
                             eos_ids=self._eos_ids(path, adapter.tokenizer),
                             banned_token_ids=marker_token_ids(config, adapter) if is_vision_model(config) else ())

    # The policy's parts, as the rollout, the runners and the tests read them.
    model = property(lambda self: self.policy.model)
    adapter = property(lambda self: self.policy.adapter)
    tokenizer = property(lambda self: self.policy.tokenizer)
    processor = property(lambda self: self.policy.processor)
    banned_token_ids = property(lambda self: self.policy.banned_token_ids)
    eos_ids = property(lambda self: self.policy.eos_ids)

    @property
    def temperature(self) -> float:
        return self.policy.temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        self.policy.temperature = float(value)

    def _prompt_inputs(self, conversations, prefix_ids):
        return self.policy.prompt_inputs(conversations, prefix_ids)

    @torch.no_grad()
    def _sample(self, conversations, inputs, seeds):
        sampler = RowSampler(seeds, self.temperature, self.banned_token_ids)
        # generate() only decodes greedily here: the sampler has already drawn each row's token.
        # A clean generation config: the model's own may carry logits processors (Qwen2.5-VL's repetition penalty)
        # that would change the distribution the sampler draws from but the learner does not reproduce.
        config = GenerationConfig(do_sample=False, max_new_tokens=self.max_new_tokens,
                                  eos_token_id=sorted(self.eos_ids), pad_token_id=self.tokenizer.pad_token_id,
                                  return_dict_in_generate=True)
        out = self.model.generate(**inputs, generation_config=config, logits_processor=[sampler])
        new_tokens = out.sequences[:, inputs["input_ids"].shape[1]:]
        logprobs = torch.stack(sampler.logprobs, dim=1)
        responses = []
        prompts = [ids[mask.bool()].tolist() for ids, mask in zip(inputs["input_ids"], inputs["attention_mask"])]
        for row, row_logprobs, prompt_ids in zip(new_tokens.tolist(), logprobs.tolist(), prompts):
            end = next((k + 1 for k, t in enumerate(row) if t in self.eos_ids), None)
            ids = row[:end] if end is not None else row
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            responses.append(Response(text=text, token_ids=ids, logprobs=row_logprobs[:len(ids)],
                                      truncated=end is None, prompt_token_ids=prompt_ids))
        return responses
