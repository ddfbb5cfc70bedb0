"""An OpenAI-compatible chat-completions client as an agent: API models, or any served model (vLLM, SGLang).

Standard library only. Requests run concurrently up to ``max_concurrency``; each has a timeout and is
retried with exponential backoff on connection errors, timeouts, 408, 429 and 5xx. Images travel as
base64 PNG ``image_url`` parts. Text only: these agents are evaluated, not trained.
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

from lmmr1_agent.agents.base import Agent, Response
from lmmr1_env.types import Message

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class AgentError(RuntimeError):
    """The model endpoint could not answer (after retries); the message names it and the last failure."""


def image_data_url(image: Any) -> str:
    """A PIL image or (H, W, 3) array as a ``data:image/png;base64,...`` URL."""
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    buffer = io.BytesIO()
    pil.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def to_openai_messages(conversation: Sequence[Message]) -> list[dict]:
    """Chat messages with lmmr1 image parts turned into OpenAI ``image_url`` parts."""
    out = []
    for message in conversation:
        content = message["content"]
        if isinstance(content, list):
            parts = []
            for part in content:
                if part.get("type") == "image":
                    parts.append({"type": "image_url", "image_url": {"url": image_data_url(part["image"])}})
                else:
                    parts.append(part)
            content = parts
        out.append({"role": message["role"], "content": content})
    return out


class OpenAIAgent(Agent):
    """Chat completions at ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``) for ``model``."""

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, temperature: float = 0.0,
                 max_new_tokens: int = 1024, timeout: float = 120.0, retries: int = 4, backoff: float = 1.0,
                 max_concurrency: int = 8, demonstration: bool = False, seed: int = 0):
        self.url = base_url.rstrip("/") + ("" if base_url.rstrip("/").endswith("/chat/completions")
                                           else "/chat/completions")
        self.model, self.api_key = model, api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.temperature, self.max_new_tokens = temperature, max_new_tokens
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.uses_demonstration, self.seed = demonstration, seed
        self.pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="lmmr1-http")

    def _post(self, payload: dict) -> dict:
        data = json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                    return json.loads(reply.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                body = exc.read()[:300].decode("utf-8", "replace")
                last = f"HTTP {exc.code}: {body}"
                if exc.code not in RETRY_STATUS:
                    break
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            except json.JSONDecodeError:
                last = "the reply is not JSON"
        raise AgentError(f"{self.url} (model {self.model!r}) failed after {attempt + 1} attempt(s): {last}")

    def _complete(self, conversation: Sequence[Message]) -> Response:
        payload = {"model": self.model, "messages": to_openai_messages(conversation),
                   "temperature": self.temperature, "max_tokens": self.max_new_tokens, "seed": self.seed}
        reply = self._post(payload)
        try:
            choice = reply["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise AgentError(f"{self.url} answered without choices[0].message.content: {str(reply)[:300]}") from None
        return Response(text=text, truncated=choice.get("finish_reason") == "length")

    def act(self, conversations: Sequence[list[Message]], infos: Sequence[dict]) -> list[Response]:
        return list(self.pool.map(self._complete, conversations))

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
