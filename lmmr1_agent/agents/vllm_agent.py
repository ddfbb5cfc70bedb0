"""vLLM as an agent (GPU extra: ``pip install 'lmmr1[gpu]'``). vLLM is imported only when this agent is built."""

from __future__ import annotations

from collections.abc import Sequence

from lmmr1_agent.agents.base import Agent, Response
from lmmr1_agent.agents.openai_http import to_openai_messages
from lmmr1_agent.models.embedded import resolve_model
from lmmr1_env.types import Message


class VLLMAgent(Agent):
    """Generates with ``vllm.LLM.chat``; returns token ids and sampling log-probs, so it can be trained."""

    trainable = True

    def __init__(self, model: str, *, temperature: float = 0.0, max_new_tokens: int = 256, seed: int = 0,
                 demonstration: bool = False, gpu_memory_utilization: float = 0.8, max_model_len: int | None = None,
                 max_pixels: int | None = None):
        try:
            import vllm
        except ImportError:
            raise ImportError("the vLLM agent needs the GPU extra: pip install 'lmmr1[gpu]'") from None
        self.uses_demonstration = demonstration
        mm_kwargs = {"max_pixels": max_pixels} if max_pixels else None
        self.llm = vllm.LLM(model=resolve_model(model), seed=seed, gpu_memory_utilization=gpu_memory_utilization,
                            max_model_len=max_model_len, mm_processor_kwargs=mm_kwargs)
        self.params = vllm.SamplingParams(temperature=temperature, max_tokens=max_new_tokens, logprobs=0, seed=seed)

    def act(self, conversations: Sequence[list[Message]], infos: Sequence[dict]) -> list[Response]:
        outputs = self.llm.chat([to_openai_messages(c) for c in conversations], self.params, use_tqdm=False)
        responses = []
        for output in outputs:
            completion = output.outputs[0]
            ids = list(completion.token_ids)
            logprobs = [float(step[token].logprob) for step, token in zip(completion.logprobs or [], ids)]
            responses.append(Response(text=completion.text, token_ids=ids, logprobs=logprobs or None,
                                      truncated=completion.finish_reason == "length"))
        return responses
