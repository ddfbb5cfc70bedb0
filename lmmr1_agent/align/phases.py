"""The two alignment phases of the embedded VLM as small functions.

Phase 1 (labels): the ResNet tower and the projector learn to read the figures' numbers through label heads;
no language model runs. Phase 2 (visual instruction tuning): the whole model answers the env's own prompts
with ``<think>description</think><answer>gold</answer>``; the projector and low-rank (LoRA) factors on the
language model's linear layers train, the tower is frozen, and the language model's own weights stay frozen
until the factors are merged into them (:func:`merge_lora`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from lmmr1_agent.align.data import FAMILY_NAMES, NUM_SLOTS, NUM_VALUES, label_arrays, target_text
from lmmr1_agent.models.fastvlm import image_pixels
from lmmr1_env.chat import assemble, user_message
from lmmr1_env.mathenv import DEMONSTRATIONS, SYSTEM_PROMPTS

IGNORE = -100
#: FastVLM's vision side: the tower and the projector (what ``--freeze-prefix`` names to freeze them).
VISION_PREFIXES = ("model.vision_tower.", "model.multi_modal_projector.")
#: The language model's linear layers that get LoRA factors (every projection of a Llama block).
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def vision_parameters(model) -> list[nn.Parameter]:
    """The tower's and projector's parameters; ValueError if the model has none (not a FastVLM)."""
    found = [p for name, p in model.named_parameters() if name.startswith(VISION_PREFIXES)]
    if not found:
        raise ValueError(f"alignment found no parameters under {VISION_PREFIXES}: is this a FastVLM model?")
    return found


def train_only(model, params: Sequence[nn.Parameter]) -> list[nn.Parameter]:
    """Freeze every parameter of ``model`` but ``params``; returns ``params``."""
    keep = {id(p) for p in params}
    for param in model.parameters():
        param.requires_grad_(id(param) in keep)
    return list(params)


class LabelHeads(nn.Module):
    """Reads the figure's numbers from the image tokens: learned queries per family and label slot, plus one
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


def image_tokens(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """The projector's output, what the language model reads: ``(images, tokens per image, LM hidden size)``."""
    return model.model.get_image_features(pixel_values=pixel_values).pooler_output


def figure_pixels(model, rows: Sequence[dict]) -> torch.Tensor:
    """The rows' figures as the model's pixel inputs, at the side it was built for."""
    return image_pixels([row["image"] for row in rows], model.config.lmmr1_image_size)


def label_loss(model, heads: LabelHeads, rows: Sequence[dict]) -> tuple[torch.Tensor, dict]:
    """Cross-entropy of the family and every present label slot; also returns per-row correctness."""
    family_ids, labels, mask = (torch.from_numpy(a) for a in label_arrays(rows))
    family_logits, slot_logits = heads(image_tokens(model, figure_pixels(model, rows)), family_ids)
    slot_loss = nn.functional.cross_entropy(slot_logits[mask], labels[mask])
    loss = slot_loss + nn.functional.cross_entropy(family_logits, family_ids)
    with torch.no_grad():
        hit = slot_logits.argmax(-1) == labels
        right = hit | ~mask
        slot_share = (hit & mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    return loss, {"all_labels_right": right.all(dim=1).numpy(), "labels_right": slot_share.numpy(),
                  "family": family_ids.numpy()}


@torch.no_grad()
def label_accuracy(model, heads: LabelHeads, rows: Sequence[dict], batch: int = 64) -> dict[str, dict]:
    """On held-out figures, per family and ``"all"``: the share whose every label the heads read right
    (``"figures"``) and the share of single labels read right (``"labels"``). Batch norms use their running
    statistics (the tower is put in eval mode for the measurement)."""
    training = model.training
    model.eval()
    parts = [label_loss(model, heads, rows[start:start + batch])[1] for start in range(0, len(rows), batch)]
    model.train(training)
    every = np.concatenate([p["all_labels_right"] for p in parts])
    single = np.concatenate([p["labels_right"] for p in parts])
    family = np.concatenate([p["family"] for p in parts])
    result = {"figures": {"all": round(float(every.mean()), 4)}, "labels": {"all": round(float(single.mean()), 4)}}
    for i, name in enumerate(FAMILY_NAMES):
        if (family == i).any():
            result["figures"][name] = round(float(every[family == i].mean()), 4)
            result["labels"][name] = round(float(single[family == i].mean()), 4)
    return result


def recalibrate_batchnorm(module: nn.Module, run: callable, batches: Iterable) -> int:
    """Reset every batch norm in ``module`` to the plain average of its statistics over ``batches``.

    ``run(batch)`` does a forward pass through ``module``. Runs in train mode under no_grad (momentum None, then
    each layer's momentum is restored), so the statistics describe the current weights rather than a decayed
    mix of past ones: without it a ResNet's held-out accuracy swung between 0 and 99 % from one measurement to
    the next while its training loss stayed low. Returns the number of batch-norm layers.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    momenta = [norm.momentum for norm in norms]
    training = module.training
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    module.train()
    with torch.no_grad():
        for batch in batches:
            run(batch)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    module.train(training)
    return len(norms)


@torch.no_grad()
def center_image_tokens(model, rows: Sequence[dict]) -> float:
    """Fold into the projector's last layer a shift and a scale that make the image tokens of ``rows`` zero-mean
    per channel with the RMS of the language model's token embeddings; returns the scale applied.

    The label heads read the tokens through a layer norm, so phase 1 constrains neither their size nor their mean.
    A part shared by every figure only hides from the language model what differs between figures: in the first
    shipped model (tower trained in phase 2 too) a constant carried most of each token, the figure-to-figure part
    of a clock's tokens was 15 % of their size (:func:`image_spread`), and the held-out loss with another figure of
    the family was equal to 3 decimals."""
    training = model.training
    model.eval()  # running statistics, as the agent will use them; a train-mode pass would also update them
    target = model.get_input_embeddings().weight.pow(2).mean().sqrt()
    tokens = image_tokens(model, figure_pixels(model, rows))
    model.train(training)
    mean = tokens.mean(dim=(0, 1))
    scale = float(target / (tokens - mean).pow(2).mean().sqrt())
    last = model.model.multi_modal_projector.linear_2
    last.weight.mul_(scale)
    last.bias.sub_(mean).mul_(scale)
    return scale


def projector_parameters(model) -> list[nn.Parameter]:
    """The projector's parameters: what phase 2 trains on the vision side (the tower stays frozen, as LLaVA's)."""
    return list(model.model.multi_modal_projector.parameters())


def image_spread(model, rows: Sequence[dict]) -> float:
    """How much the image tokens change from figure to figure: the RMS over positions and channels of their
    standard deviation across ``rows``, over the tokens' RMS (0: every figure gives the same tokens)."""
    with torch.no_grad():
        tokens = image_tokens(model, figure_pixels(model, rows))
    return float(tokens.std(dim=0).pow(2).mean().sqrt() / tokens.pow(2).mean().sqrt())


class LoRALinear(nn.Module):
    """``base(x) + scale · (x Aᵀ) Bᵀ``: a frozen linear layer plus a trainable rank-``rank`` update (LoRA).

    ``B`` starts at zero, so the layer starts as ``base``; only the factors receive gradients, so a backward
    pass never forms the full weight gradient.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float, generator: torch.Generator):
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        self.lora_down = nn.Parameter(torch.empty(rank, base.in_features))
        nn.init.kaiming_uniform_(self.lora_down, a=math.sqrt(5), generator=generator)
        self.lora_up = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_down.t()) @ self.lora_up.t() * self.scale

    def delta(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(up, down)`` with ``up @ down`` the update to ``base.weight`` (the scale folded into ``up``)."""
        return (self.lora_up * self.scale).detach().contiguous(), self.lora_down.detach().contiguous()


def add_lora(model, rank: int, alpha: float, seed: int = 0) -> list[nn.Parameter]:
    """Wrap every :data:`LORA_TARGETS` linear of the language model in :class:`LoRALinear`; returns the factors."""
    generator = torch.Generator().manual_seed(seed)
    language = model.model.language_model
    targets = [(name, module) for name, module in language.named_modules()
               if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in LORA_TARGETS]
    if not targets:
        raise ValueError(f"no {LORA_TARGETS} layers in the language model to put LoRA factors on")
    params = []
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        wrapped = LoRALinear(module, rank, alpha, generator)
        setattr(language.get_submodule(parent_name), child, wrapped)
        params += [wrapped.lora_down, wrapped.lora_up]
    return params


def lora_deltas(model) -> dict[str, torch.Tensor]:
    """The LoRA updates as tensors named after the weight they change: ``<weight name>.lora_up`` (out, rank)
    and ``<weight name>.lora_down`` (rank, in), names relative to ``model.model`` (``language_model.…``)."""
    out = {}
    for name, module in model.model.named_modules():
        if isinstance(module, LoRALinear):
            out[f"{name}.weight.lora_up"], out[f"{name}.weight.lora_down"] = module.delta()
    return out


@torch.no_grad()
def load_lora_factors(model, tensors: dict[str, torch.Tensor]) -> int:
    """Set the :class:`LoRALinear` factors of ``model`` from :func:`lora_deltas`-named ``tensors`` (the scale
    folded into ``lora_up``), to continue training them; returns the number of layers set. ValueError when a
    layer has no factors there or their shapes (the rank) differ."""
    layers = 0
    for name, module in model.model.named_modules():
        if not isinstance(module, LoRALinear):
            continue
        up, down = tensors.get(f"{name}.weight.lora_up"), tensors.get(f"{name}.weight.lora_down")
        if up is None or down is None or up.shape != module.lora_up.shape or down.shape != module.lora_down.shape:
            found = None if up is None else tuple(up.shape)
            raise ValueError(f"no LoRA factors of shape {tuple(module.lora_up.shape)} for {name} (found {found}):"
                             " continue with the rank the earlier alignment used (--lora-rank)")
        module.lora_up.copy_(up.float() / module.scale)
        module.lora_down.copy_(down.float())
        layers += 1
    return layers


@torch.no_grad()
def merge_lora(model) -> int:
    """Fold every LoRA update into its base weight and unwrap the layer; returns the number merged."""
    merged = 0
    for name, module in list(model.model.named_modules()):
        if isinstance(module, LoRALinear):
            up, down = module.delta()
            module.base.weight.add_(up @ down)
            parent_name, _, child = name.rpartition(".")
            setattr(model.model.get_submodule(parent_name), child, module.base)
            merged += 1
    return merged


def conversation(task: dict, image) -> list[dict]:
    """The env's own prompt for a task: system prompt, demonstration, then the figure (None: a text problem)
    and question."""
    return assemble(SYSTEM_PROMPTS["answer"], [user_message({"text": task["problem"], "image": image})],
                    demonstration=DEMONSTRATIONS["answer"])


def language_batch(adapter, rows: Sequence[dict], visual: str = "description") -> dict[str, torch.Tensor]:
    """Teacher-forcing inputs: prompt (the env's, as the agent builds it) + target response
    (:func:`~lmmr1_agent.align.data.target_text` with ``visual``), right-padded.

    ``labels`` are -100 except on the response tokens (and the closing end-of-turn token); ``answer_mask``
    marks the tokens of the answer itself (inside ``<answer>``). Rows without an image (text rehearsal) may
    share the batch; ``pixel_values`` holds the figures of the rows that have one (absent when none has).
    """
    tokenizer = adapter.tokenizer
    prompts = [adapter.prepare([conversation(row, row["image"])]) for row in rows]
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")

    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    sequences, targets, answers = [], [], []
    for row, prompt in zip(rows, prompts):
        head, answer = target_text(row, visual).split("<answer>")
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

    batch = {"input_ids": padded(sequences, tokenizer.pad_token_id), "labels": padded(targets, IGNORE),
             "attention_mask": padded([[1] * len(s) for s in sequences], 0),
             "answer_mask": padded(answers, 0).bool()}
    pixels = [p["pixel_values"] for p in prompts if "pixel_values" in p]
    if pixels:
        batch["pixel_values"] = torch.cat(pixels)
    return batch


class SharedOpening:
    """The prompt's fixed opening (system prompt, demonstration, user turn start) that every row shares: the
    language model runs it once per step at batch size 1, with gradients, and the rows attend to its keys and
    values. The same loss and gradients as running it in every row, at a fraction of the cost (the opening is
    about half of each prompt)."""

    def __init__(self, adapter):
        blank = np.zeros((16, 16, 3), np.uint8)
        example = adapter.tokenizer.apply_chat_template(conversation({"problem": ""}, blank), tokenize=False,
                                                        add_generation_prompt=True)
        opening = example[:example.index(adapter.image_token)]
        self.ids = torch.tensor(adapter.tokenizer(opening, add_special_tokens=False)["input_ids"])

    def cache(self, model, batch: int):
        """A cache holding the opening's keys and values for ``batch`` rows (a forward pass appends to it)."""
        from lmmr1_agent.policy import expanded_cache

        return expanded_cache(model.model.language_model(input_ids=self.ids[None], use_cache=True).cache, batch)


def response_hidden(model, batch: dict[str, torch.Tensor], opening: SharedOpening | None) -> torch.Tensor:
    """Last hidden states ``(batch, seq, hidden)``; with ``opening``, its positions come from one shared pass
    (and are zeros here: no loss is taken there)."""
    ids = batch["input_ids"]
    if opening is None:
        return model.model(input_ids=ids, attention_mask=batch["attention_mask"],
                           pixel_values=batch.get("pixel_values")).last_hidden_state
    length = len(opening.ids)
    if not torch.equal(ids[:, :length], opening.ids.expand(ids.shape[0], -1)):
        raise ValueError("the batch's prompts do not start with the shared opening")
    suffix = ids[:, length:]
    embeds = model.get_input_embeddings()(suffix)
    if "pixel_values" in batch:
        image = image_tokens(model, batch["pixel_values"]).reshape(-1, embeds.shape[-1])
        mask = (suffix == model.config.image_token_id).unsqueeze(-1).expand_as(embeds)
        embeds = embeds.masked_scatter(mask, image.to(embeds.dtype))
    out = model.model.language_model(inputs_embeds=embeds, attention_mask=batch["attention_mask"],
                                     cache=opening.cache(model, ids.shape[0]), use_cache=True)
    hidden = out.last_hidden_state
    return torch.cat([hidden.new_zeros(ids.shape[0], length, hidden.shape[-1]), hidden], dim=1)


def language_loss(model, batch: dict[str, torch.Tensor],
                  opening: SharedOpening | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean cross-entropy over response tokens; also the share of responses and of answers predicted right.

    "Right" is teacher-forced argmax: every token of the response (or of the answer) is the most likely one.
    """
    labels, answer_mask = batch["labels"], batch["answer_mask"]
    hidden = response_hidden(model, batch, opening)
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
