"""The policy the sampler and the learner share: the model, its adapter (the processor that turns conversations
into inputs), and the rules that make the learner's log-probs the sampler's — the sampling temperature, the
banned vision-marker tokens, the turn-end tokens. The Hugging Face agent samples with it, the learner scores
with it (:meth:`Policy.logprobs`), and every tensor it builds is on the model's device."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from lmmr1_agent.learner.samples import Sample


def expanded_cache(cache, rows: int):
    """A ``DynamicCache`` holding the keys and values of ``cache`` (one row: a prefix every row shares) for
    ``rows`` rows, as views, not copies; a forward pass appends to it, and gradients through it sum over the rows
    (the same as running the prefix in every row)."""
    from transformers import DynamicCache

    out = DynamicCache()
    for index, layer in enumerate(cache.layers):
        out.update(layer.keys.expand(rows, -1, -1, -1), layer.values.expand(rows, -1, -1, -1), index)
    return out


#: Models whose forward continues a cache at plain sequence positions, so a prompt the rows of a micro-batch share
#: can run once (:meth:`Policy.logprobs`). Qwen2-VL's 3-D multimodal positions are left out: they run in full.
SHARED_PREFIX_MODELS = ("LlamaForCausalLM", "Qwen2ForCausalLM", "FastVlmForConditionalGeneration",
                        "LlavaForConditionalGeneration")


class Policy:
    """A Hugging Face model with its adapter, sampling temperature, banned tokens and turn-end tokens."""

    #: Run a prompt the rows of a micro-batch share once (the group's 8 samples have one prompt); off: every row
    #: runs its whole sequence. The same log-probs and gradients either way (tested).
    share_prefix = True
    #: What runs the policy's own forward passes in :meth:`logprobs`: the model, or an engine wrapping it (DeepSpeed's,
    #: whose forward does the bookkeeping its gradient accumulation needs).
    forward = None

    def __init__(self, model: torch.nn.Module, adapter, *, temperature: float, banned_token_ids: Iterable[int] = (),
                 eos_ids: Iterable[int] = ()):
        self.model, self.adapter, self.tokenizer = model, adapter, adapter.tokenizer
        self.temperature = float(temperature)
        #: Tokens the policy never samples (a VL model's vision markers: one in a response would stand for an image
        #: that is not there); :meth:`logprobs` masks them the same way.
        self.banned_token_ids = sorted(int(i) for i in banned_token_ids)
        self.eos_ids = {int(i) for i in eos_ids}

    @property
    def processor(self):
        """What a saved folder needs beside the weights: the model's processor where it has one, else the tokenizer."""
        return getattr(self.adapter, "processor", None) or self.tokenizer

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to_device(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``inputs`` on the model's device, their floating-point tensors (pixels) in the model's dtype; the sampling
        log-probs stay float32."""
        first = next(self.model.parameters())
        return {k: v.to(first.device, dtype=first.dtype if v.is_floating_point() and k != "old_logprobs" else None)
                if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}

    def prompt_inputs(self, conversations, prefix_ids=None) -> dict[str, torch.Tensor]:
        """Left-padded generation inputs of ``conversations`` (each continuing its ``prefix_ids``), on the device."""
        return self.to_device(self.adapter.prepare(conversations, prefix_ids))

    def sequences(self, samples: Sequence[Sample]) -> dict[str, torch.Tensor]:
        """The learner's batch of ``samples``, on the model's device: right-padded prompt+response ids, the
        response mask (shifted to predict-next positions), the sampling log-probs there (``old_logprobs``) and the
        adapter's image inputs."""
        width = max(len(s.prompt_ids) + len(s.response_ids) for s in samples)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(samples), width), pad, dtype=torch.long)
        attention = torch.zeros((len(samples), width), dtype=torch.long)
        mask = torch.zeros((len(samples), width - 1), dtype=torch.bool)
        old = torch.zeros((len(samples), width - 1))
        for row, s in enumerate(samples):
            seq = s.prompt_ids + s.response_ids
            ids[row, : len(seq)] = torch.tensor(seq)
            attention[row, : len(seq)] = 1
            start = len(s.prompt_ids) - 1  # logits at position t predict token t + 1
            mask[row, start : start + len(s.response_ids)] = (
                True if s.response_mask is None else torch.tensor(s.response_mask))
            old[row, start : start + len(s.response_ids)] = torch.tensor(s.logprobs)
        batch = {"input_ids": ids, "attention_mask": attention, "mask": mask, "old_logprobs": old}
        batch.update(self.adapter.image_inputs([s.conversation for s in samples], ids))
        return self.to_device(batch)

    def logprobs(self, batch: dict[str, torch.Tensor], model: torch.nn.Module | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probs ``(batch, seq - 1)`` of the taken tokens under the sampler's distribution (its temperature,
        its banned tokens), and those logits from the first response position on. ``model``: the policy's own
        (default), or a copy of it (the reference).

        Only positions from the earliest response token on get logits (``logits_to_keep``): the prompt's
        full-vocabulary logits were most of the backward's memory. A prefix every row shares (a group's prompt:
        system prompt, demonstration, figure and question) runs once at batch size 1 and the rows continue from its
        keys and values (:meth:`_shared_prefix`): a group of 8 samples of 25 tokens after a 200-token prompt costs
        400 token positions instead of 1800.
        """
        model = self.model if model is None else model
        mask = batch["mask"]
        start = int(mask.any(dim=0).nonzero()[0]) if mask.any() else mask.shape[1]
        shared = self._shared_prefix(model, batch)
        if shared:
            logits = self._prefix_logits(model, batch, shared, start)[:, :-1]
        else:
            keep = mask.shape[1] + 1 - start  # sequence positions start .. width - 1
            logits = self._run(model)(**self.model_inputs(batch), logits_to_keep=keep).logits[:, :-1]
        logits = logits.float() / self.temperature
        if self.banned_token_ids:  # the sampler never draws them: the same distribution here
            logits = logits.index_fill(-1, torch.tensor(self.banned_token_ids, device=logits.device), float("-inf"))
        logp = torch.log_softmax(logits, dim=-1)
        taken = logp.gather(-1, batch["input_ids"][:, start + 1 :, None]).squeeze(-1)
        full = torch.zeros(mask.shape, dtype=taken.dtype, device=taken.device)
        full = torch.cat([full[:, :start], taken], dim=1)
        return full, logits

    def _shared_prefix(self, model, batch: dict[str, torch.Tensor]) -> int:
        """How many leading tokens every row of ``batch`` has in common within its prompt (0: run rows in full).

        0 too for a single row, a model outside :data:`SHARED_PREFIX_MODELS`, inputs beyond ids, mask and pixels,
        or images on both sides of the split (the prefix must hold all of them or none). Where the same
        image tokens stand for different images (two groups' figures), only the text before them is shared."""
        ids, attention, mask = batch["input_ids"], batch["attention_mask"], batch["mask"]
        extra = set(self.model_inputs(batch)) - {"input_ids", "attention_mask", "pixel_values"}
        if not self.share_prefix or len(ids) < 2 or extra or type(model).__name__ not in SHARED_PREFIX_MODELS:
            return 0
        limit = int(mask.int().argmax(dim=1).min()) + 1  # the shortest prompt: its last position predicts
        same = ((ids[:, :limit] == ids[:1, :limit]) & (attention[:, :limit] == 1)).all(dim=0)
        shared = limit if bool(same.all()) else int((~same).int().argmax())
        image = getattr(model.config, "image_token_id", None)
        if shared < 2 or image is None or "pixel_values" not in batch:
            return shared if shared >= 2 else 0
        before, after = bool((ids[:, :shared] == image).any()), bool((ids[:, shared:] == image).any())
        if before and after:
            return 0
        if before:  # the same image tokens stand for every row's images: the images must be the same too
            pixels = batch["pixel_values"]
            first = pixels[: len(pixels) // len(ids)]
            if len(pixels) % len(ids) or not torch.equal(pixels, first.repeat(len(ids), *[1] * (pixels.dim() - 1))):
                shared = int((ids[0] == image).int().argmax())  # share the text before the first image only
        return shared if shared >= 2 else 0

    def _prefix_logits(self, model, batch: dict[str, torch.Tensor], shared: int, start: int) -> torch.Tensor:
        """Logits ``(batch, seq - start, vocab)`` for positions ``start ..`` (``start >= shared - 1``): the shared
        prefix in one row, then every row's rest on its expanded keys and values (gradients reach the prefix
        through both)."""
        ids, attention = batch["input_ids"], batch["attention_mask"]
        head = {"input_ids": ids[:1, :shared], "attention_mask": attention[:1, :shared]}
        rest = {"input_ids": ids[:, shared:], "attention_mask": attention}
        if "pixel_values" in batch:  # each row's images are all in the prefix (the same ones) or all after it
            image = model.config.image_token_id
            if bool((ids[0, :shared] == image).any()):
                head["pixel_values"] = batch["pixel_values"][: len(batch["pixel_values"]) // len(ids)]
            else:
                rest["pixel_values"] = batch["pixel_values"]
        out = self._run(model)(**head, use_cache=True, logits_to_keep=1)
        tail = self._run(model)(**rest, cache=expanded_cache(out.cache, len(ids)),
                     logits_to_keep=ids.shape[1] - max(start, shared)).logits
        if start < shared:  # the prefix's last position predicts the first response token
            return torch.cat([out.logits.expand(len(ids), -1, -1), tail], dim=1)
        return tail

    def _run(self, model):
        return self.forward if model is self.model and self.forward is not None else model

    @staticmethod
    def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The model's inputs in a batch: ids, mask and whatever the adapter added (pixels, grids, image sizes, token
        types), without the learner's own entries."""
        return {k: v for k, v in batch.items() if k not in ("mask", "old_logprobs")}
