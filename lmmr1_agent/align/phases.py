"""The two alignment phases as small functions: label heads (no language model), then the frozen language model.

Only ``model.model.visual`` (tower + merger) ever receives gradients; :func:`freeze_language` makes sure.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from lmmr1_agent.align.data import FAMILY_NAMES, NUM_SLOTS, NUM_VALUES, label_arrays, target_text
from lmmr1_env.chat import assemble, user_message
from lmmr1_env.mathenv import DEMONSTRATIONS, SYSTEM_PROMPTS

IGNORE = -100


def freeze_language(model) -> list[nn.Parameter]:
    """Freeze everything but the vision tower and merger; return the trainable (vision) parameters."""
    trainable = []
    for name, param in model.named_parameters():
        is_vision = name.startswith("model.visual.")
        param.requires_grad_(is_vision)
        if is_vision:
            trainable.append(param)
    if not trainable:
        raise ValueError("alignment found no vision parameters (model.visual.*): is this a Qwen2.5-VL model?")
    return trainable


class LabelHeads(nn.Module):
    """Reads the figure's numbers from the merger output: learned queries per family and label slot, plus one
    for the family itself.

    Input ``(batch, image_tokens, hidden)`` and the figures' family ids ``(batch,)``; output ``(family logits
    (batch, families), slot logits (batch, NUM_SLOTS, NUM_VALUES))``. A clock's first slot (the hour) and a
    chart's first slot (the first bar) need different places of the figure, so each family has its own
    queries; with one query per slot for all families the hour was never read (200 steps, 4 families: 0 %).
    Discarded after the labels phase.
    """

    def __init__(self, hidden: int, width: int = 256):
        super().__init__()
        self.project = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, width))
        self.family_query = nn.Parameter(torch.randn(1, 1, width) / width**0.5)
        self.queries = nn.Parameter(torch.randn(len(FAMILY_NAMES), NUM_SLOTS, width) / width**0.5)
        self.family = nn.Linear(width, len(FAMILY_NAMES))
        self.values = nn.Linear(width, NUM_VALUES)

    def forward(self, tokens: torch.Tensor, family_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys = self.project(tokens)  # (B, T, W)
        queries = torch.cat([self.family_query.expand(len(tokens), -1, -1), self.queries[family_ids]], dim=1)
        weights = torch.softmax(torch.einsum("bsw,btw->bst", queries, keys) / keys.shape[-1] ** 0.5, dim=-1)
        pooled = torch.einsum("bst,btw->bsw", weights, keys)
        return self.family(pooled[:, 0]), self.values(pooled[:, 1:])


def image_tokens(model, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
    """The merger output for equally sized images: ``(images, tokens per image, LM hidden size)``."""
    merged = model.model.visual(pixel_values, grid_thw=grid_thw).pooler_output
    return merged.view(grid_thw.shape[0], -1, merged.shape[-1])


def pixels(processor, rows: Sequence[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(pixel_values, image_grid_thw)`` for the rows' images, through the agent's own image processor."""
    out = processor(images=[row["image"] for row in rows], return_tensors="pt")
    return out["pixel_values"], out["image_grid_thw"]


def label_loss(model, heads: LabelHeads, processor, rows: Sequence[dict]) -> tuple[torch.Tensor, dict]:
    """Cross-entropy of the family and every present label slot; also returns per-row correctness."""
    family_ids, labels, mask = (torch.from_numpy(a) for a in label_arrays(rows))
    family_logits, slot_logits = heads(image_tokens(model, *pixels(processor, rows)), family_ids)
    slot_loss = nn.functional.cross_entropy(slot_logits[mask], labels[mask])
    loss = slot_loss + nn.functional.cross_entropy(family_logits, family_ids)
    with torch.no_grad():
        hit = slot_logits.argmax(-1) == labels
        right = hit | ~mask
        slot_share = (hit & mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    return loss, {"all_labels_right": right.all(dim=1).numpy(), "labels_right": slot_share.numpy(),
                  "family": family_ids.numpy()}


@torch.no_grad()
def label_accuracy(model, heads: LabelHeads, processor, rows: Sequence[dict], batch: int = 64) -> dict[str, dict]:
    """On held-out figures, per family and ``"all"``: the share whose every label the heads read right
    (``"figures"``) and the share of single labels read right (``"labels"``)."""
    parts = [label_loss(model, heads, processor, rows[start:start + batch])[1]
             for start in range(0, len(rows), batch)]
    every = np.concatenate([p["all_labels_right"] for p in parts])
    single = np.concatenate([p["labels_right"] for p in parts])
    family = np.concatenate([p["family"] for p in parts])
    result = {"figures": {"all": round(float(every.mean()), 4)}, "labels": {"all": round(float(single.mean()), 4)}}
    for i, name in enumerate(FAMILY_NAMES):
        if (family == i).any():
            result["figures"][name] = round(float(every[family == i].mean()), 4)
            result["labels"][name] = round(float(single[family == i].mean()), 4)
    return result


@torch.no_grad()
def match_embedding_scale(model, processor, rows: Sequence[dict]) -> float:
    """Rescale the merger's last layer so the image tokens of ``rows`` have the RMS of the language model's
    token embeddings (the label heads never constrained their scale); returns the factor applied."""
    target = model.get_input_embeddings().weight.pow(2).mean().sqrt()
    current = image_tokens(model, *pixels(processor, rows)).pow(2).mean().sqrt()
    scale = float(target / current)
    last = model.model.visual.merger.mlp[-1]
    last.weight.mul_(scale)
    last.bias.mul_(scale)
    return scale


def conversation(task: dict, image) -> list[dict]:
    """The env's own prompt for a task: system prompt, demonstration, then the figure and question."""
    return assemble(SYSTEM_PROMPTS["answer"], [user_message({"text": task["problem"], "image": image})],
                    demonstration=DEMONSTRATIONS["answer"])


def language_batch(adapter, rows: Sequence[dict]) -> dict[str, torch.Tensor]:
    """Teacher-forcing inputs: prompt (the env's, as the agent builds it) + target response, right-padded.

    ``labels`` are -100 except on the response tokens (and the closing end-of-turn token); ``answer_mask``
    marks the tokens of the answer itself (inside ``<answer>``).
    """
    tokenizer = adapter.tokenizer
    prompts = [adapter.prepare([conversation(row, row["image"])]) for row in rows]
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")

    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    sequences, targets, answers = [], [], []
    for row, prompt in zip(rows, prompts):
        head, answer = target_text(row).split("<answer>")
        value, tail = answer.split("</answer>")
        pieces = [encode(head + "<answer>"), encode(value), encode("</answer>" + tail) + [end]]
        ids = prompt["input_ids"][0].tolist()
        response = [t for piece in pieces for t in piece]
        sequences.append(ids + response)
        targets.append([IGNORE] * len(ids) + response)
        answers.append([0] * (len(ids) + len(pieces[0])) + [1] * len(pieces[1]) + [0] * len(pieces[2]))
    length = max(len(s) for s in sequences)

    def padded(lists: list[list[int]], fill: int) -> torch.Tensor:
        return torch.tensor([x + [fill] * (length - len(x)) for x in lists])

    return {"input_ids": padded(sequences, tokenizer.pad_token_id), "labels": padded(targets, IGNORE),
            "attention_mask": padded([[1] * len(s) for s in sequences], 0),
            "answer_mask": padded(answers, 0).bool(),
            "pixel_values": torch.cat([p["pixel_values"] for p in prompts]),
            "image_grid_thw": torch.cat([p["image_grid_thw"] for p in prompts])}


class FrozenPrefix:
    """The language model's keys and values for the prompt's fixed opening (system prompt, demonstration, user
    turn start), computed once: the language model is frozen and the opening precedes the image, so they never
    change. Saves about two thirds of each language-phase step.
    """

    def __init__(self, model, adapter):
        blank = np.zeros((28, 28, 3), np.uint8)
        example = adapter.tokenizer.apply_chat_template(conversation({"problem": ""}, blank), tokenize=False,
                                                        add_generation_prompt=True)
        opening = example[:example.index("<|vision_start|>")]
        self.ids = torch.tensor(adapter.tokenizer(opening, add_special_tokens=False)["input_ids"])
        with torch.no_grad():
            out = model.model.language_model(input_ids=self.ids[None], use_cache=True)
        cache = out.past_key_values
        self.layers = [(layer.keys, layer.values) for layer in cache.layers]

    def cache(self, batch: int):
        """A fresh cache holding the opening for ``batch`` sequences (a forward pass appends to it)."""
        from transformers import DynamicCache

        cache = DynamicCache()
        for index, (keys, values) in enumerate(self.layers):
            cache.update(keys.expand(batch, -1, -1, -1).contiguous(), values.expand(batch, -1, -1, -1).contiguous(),
                         index)
        return cache


def response_hidden(model, batch: dict[str, torch.Tensor], prefix: FrozenPrefix | None) -> torch.Tensor:
    """Last hidden states ``(batch, seq, hidden)``; with ``prefix``, the opening's positions come from its cache."""
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values", "image_grid_thw")}
    if prefix is None:
        return model.model(**inputs).last_hidden_state
    ids, length = inputs["input_ids"], len(prefix.ids)
    if not torch.equal(ids[:, :length], prefix.ids.expand(ids.shape[0], -1)):
        raise ValueError("the batch's prompts do not start with the cached opening")
    suffix = ids[:, length:]
    embeds = model.get_input_embeddings()(suffix)
    image = image_tokens(model, inputs["pixel_values"], inputs["image_grid_thw"]).reshape(-1, embeds.shape[-1])
    mask = (suffix == model.config.image_token_id).unsqueeze(-1).expand_as(embeds)
    embeds = embeds.masked_scatter(mask, image.to(embeds.dtype))
    out = model.model.language_model(inputs_embeds=embeds, attention_mask=inputs["attention_mask"],
                                     cache=prefix.cache(ids.shape[0]), use_cache=True)
    hidden = out.last_hidden_state
    return torch.cat([hidden.new_zeros(ids.shape[0], length, hidden.shape[-1]), hidden], dim=1)


def language_loss(model, batch: dict[str, torch.Tensor],
                  prefix: FrozenPrefix | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean cross-entropy over response tokens; also the share of responses and of answers predicted right.

    "Right" is teacher-forced argmax: every token of the response (or of the answer) is the most likely one.
    """
    labels, answer_mask = batch["labels"], batch["answer_mask"]
    hidden = response_hidden(model, batch, prefix)
    # Position t predicts token t + 1: run the LM head only where the next token is in the loss.
    targets, answer_mask = labels[:, 1:], answer_mask[:, 1:]
    keep = targets != IGNORE
    logits = model.lm_head(hidden[:, :-1][keep])
    loss = nn.functional.cross_entropy(logits, targets[keep])
    with torch.no_grad():
        wrong = torch.zeros_like(targets, dtype=torch.bool)
        wrong[keep] = logits.argmax(-1) != targets[keep]
        stats = {"response_right": float((~wrong.any(dim=1)).float().mean()),
                 "answer_right": float((~(wrong & answer_mask).any(dim=1)).float().mean())}
    return loss, stats
