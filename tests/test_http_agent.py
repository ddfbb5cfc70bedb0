"""The OpenAI-compatible agent against hostile servers on 127.0.0.1: one that hangs, one whose ``content`` is not a
string, one whose body is not UTF-8. Each failure is retried within a time budget, then one line naming the
endpoint; the env only ever receives ``str``.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from lmmr1_agent.agents.openai_http import AgentError, OpenAIAgent
from tests.chat_server import TEXT_CHAT, FakeChatServer, reply


def hang(attempt, body):
    time.sleep(5)
    return reply("too late")


def test_a_hanging_server_costs_at_most_the_retry_budget():
    with FakeChatServer(hang) as server:
        agent = OpenAIAgent(server.url, "m", timeout=0.4, retry_budget=1.0, backoff=0.05)
        start = time.monotonic()
        with pytest.raises(AgentError) as err:
            agent.act([TEXT_CHAT], [{}])
        seconds = time.monotonic() - start
        agent.close()
    message = str(err.value)
    assert seconds < 2.0, seconds
    assert message.startswith(f"openai:m at {server.url}: no answer after ") and "timed out after 0.4 s" in message
    assert "\n" not in message and len(server.requests) in (2, 3)


def test_the_budget_stops_retries_before_the_retry_count_does():
    with FakeChatServer(lambda n, body: (503, {"error": "overloaded"})) as server:
        agent = OpenAIAgent(server.url, "m", retries=50, backoff=0.2, retry_budget=0.5)
        start = time.monotonic()
        with pytest.raises(AgentError, match=r"no answer after 2 attempt\(s\) \(HTTP 503"):
            agent.act([TEXT_CHAT], [{}])
        assert time.monotonic() - start < 1.0
    assert len(server.requests) == 2


def test_one_failed_request_stops_the_others_retrying():
    # The first request is refused for good (400, not retried); the other three would retry 3 times each.
    with FakeChatServer(lambda n, body: (400, {"error": "bad"}) if n == 1 else (500, {"error": "boom"})) as server:
        agent = OpenAIAgent(server.url, "m", retries=3, backoff=0.5, max_concurrency=4)
        with pytest.raises(AgentError):
            agent.act([TEXT_CHAT] * 4, [{}] * 4)
        agent.close()
    assert len(server.requests) <= 4  # nobody retried after the first gave up


@pytest.mark.parametrize("content,text", [(None, ""), ([{"type": "text", "text": "<answer>"}, {"type": "text",
                                                     "text": "4</answer>"}], "<answer>4</answer>")])
def test_null_and_content_parts_become_text(content, text):
    with FakeChatServer(lambda n, body: reply(content)) as server:
        (response,) = OpenAIAgent(server.url, "m").act([TEXT_CHAT], [{}])
    assert response.text == text and isinstance(response.text, str)


@pytest.mark.parametrize("content", [7, 0, True, {"text": "x"}, [{"type": "image_url"}], ["bare string part"]])
def test_content_that_is_not_text_is_a_failed_reply(content):
    with FakeChatServer(lambda n, body: reply(content) if n == 1 else reply("<answer>1</answer>")) as server:
        (response,) = OpenAIAgent(server.url, "m", backoff=0.01).act([TEXT_CHAT], [{}])
    assert response.text == "<answer>1</answer>" and len(server.requests) == 2
    with FakeChatServer(lambda n, body: reply(content)) as server:
        with pytest.raises(AgentError, match=r"no answer after 2 attempt\(s\) \(choices\[0\]\.message\.content is"):
            OpenAIAgent(server.url, "m", retries=1, backoff=0.01).act([TEXT_CHAT], [{}])


def test_a_body_that_is_not_utf8_is_retried():
    good = b'{"choices": [{"message": {"content": "<answer>2</answer>"}, "finish_reason": "stop"}]}'
    with FakeChatServer(lambda n, body: (200, b'{"choices": "\xff\xfe"}' if n == 1 else good)) as server:
        (response,) = OpenAIAgent(server.url, "m", backoff=0.01).act([TEXT_CHAT], [{}])
    assert response.text == "<answer>2</answer>" and len(server.requests) == 2
    with FakeChatServer(lambda n, body: (200, b"\xff" * 10)) as server:
        with pytest.raises(AgentError, match=r"no answer after 3 attempt\(s\) \(the reply is not UTF-8"):
            OpenAIAgent(server.url, "m", retries=2, backoff=0.01).act([TEXT_CHAT], [{}])


@pytest.mark.parametrize("kwargs,needle", [({"timeout": 0}, "timeout"), ({"timeout": float("inf")}, "timeout"),
                                           ({"retry_budget": -1}, "retry_budget"), ({"retries": -1}, "retries"),
                                           ({"max_concurrency": 0}, "max_concurrency")])
def test_bad_settings_are_refused(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        OpenAIAgent("http://127.0.0.1:9/v1", "m", **kwargs)


def test_evaluate_against_a_hanging_server_is_one_line_and_exit_2(tmp_path):
    with FakeChatServer(hang) as server:
        start = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "lmmr1_agent.evaluate", "--agent", server.url, "--api-model", "m",
                               "--episodes", "2", "--no-progress", "--request-timeout", "0.5", "--request-budget", "1",
                               "--output", str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path,
                              timeout=60)
        seconds = time.monotonic() - start
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(lines) == 1 and f"openai:m at {server.url}: no answer after" in lines[0], lines
    assert "timed out after 0.5 s" in lines[0] and seconds < 15, seconds
