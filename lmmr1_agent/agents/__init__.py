"""Agents: the one batched interface, and :func:`make_agent`, which builds any of them from a name."""

from __future__ import annotations

from lmmr1_agent.agents.base import Agent, Response
from lmmr1_agent.agents.scripted import AGENTS

__all__ = ["AGENTS", "Agent", "Response", "make_agent"]


def make_agent(spec: str, *, seed: int = 0, temperature: float = 0.0, max_new_tokens: int = 256,
               demonstration: bool | None = None, api_model: str | None = None, api_key: str | None = None,
               max_concurrency: int = 8, min_pixels: int | None = None, max_pixels: int | None = None,
               request_timeout: float | None = None, request_budget: float | None = None, device: str = "cpu",
               dtype: str = "float32") -> Agent:
    """The agent ``spec`` names.

    - a scripted name from :data:`AGENTS` (``idle``, ``random``, ``oracle``, game agents);
    - ``http://…`` / ``https://…``: an OpenAI-compatible endpoint serving ``api_model``;
    - ``vllm:MODEL``: MODEL generated with vLLM (GPU extra);
    - anything else: a Hugging Face model — ``embedded`` (SmolLM2-135M-Instruct), ``embedded-vl`` (it
      inside FastVLM with the aligned ResNet tower), ``embedded-vl-random`` (the same model with a fresh,
      blind tower), a local folder or a hub id.

    ``request_timeout`` / ``request_budget`` (seconds per try / over all tries) apply to the endpoint only;
    None keeps :class:`~lmmr1_agent.agents.openai_http.OpenAIAgent`'s defaults; ``device`` and ``dtype`` place a
    Hugging Face model. A name that is none of these, or a folder that does not exist, is a ValueError naming it.
    """
    if spec in AGENTS:
        return AGENTS[spec](seed=seed)
    if spec.startswith(("http://", "https://")):
        from lmmr1_agent.agents.openai_http import OpenAIAgent

        if not api_model:
            raise ValueError(f"--agent {spec} is an API endpoint: name the served model with --api-model")
        limits = {k: v for k, v in (("timeout", request_timeout), ("retry_budget", request_budget)) if v is not None}
        return OpenAIAgent(spec, api_model, api_key=api_key, temperature=temperature, max_new_tokens=max_new_tokens,
                           max_concurrency=max_concurrency, demonstration=bool(demonstration), seed=seed, **limits)
    pixels = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
    if spec.startswith("vllm:"):
        from lmmr1_agent.agents.vllm_engine import VLLMPolicyAgent  # the training rollouts' engine

        return VLLMPolicyAgent(spec.removeprefix("vllm:"), temperature=temperature, max_new_tokens=max_new_tokens,
                               seed=seed, demonstration=demonstration, max_pixels=max_pixels, dtype=dtype)
    from lmmr1_agent.cli import ModelFolderError, check_model
    from lmmr1_agent.models.embedded import EMBEDDED

    try:
        check_model(spec)
    except ModelFolderError:  # a path the user meant as a folder: its own message says what is wrong with it
        raise
    except ValueError:
        raise ValueError(f"unknown agent {spec!r}: not a scripted agent ({', '.join(sorted(AGENTS))}), an embedded "
                         f"model ({', '.join(sorted(EMBEDDED))}), a model folder, a hub id (org/name), vllm:MODEL "
                         "or an http(s):// endpoint") from None
    from lmmr1_agent.agents.hf import HFAgent

    return HFAgent(spec, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed,
                   demonstration=demonstration, device=device, dtype=dtype, **pixels)
