"""Sampling is seeded per row: a response depends on its seed and its prompt, never on the batch around it."""

from __future__ import annotations

import pytest

from lmmr1_agent.agents.hf import HFAgent
from lmmr1_env import build_messages
from tests.tiny_models import build_llama

SHORT = build_messages("Digits only.", [{"text": "Say a number."}])
LONG = build_messages("Digits only.", [{"text": "Say a number between one hundred and two hundred, please."}])


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    return HFAgent(str(build_llama(tmp_path_factory.mktemp("tiny-llama-sampling"))), temperature=1.0,
                   max_new_tokens=10)


def test_a_rows_sample_does_not_depend_on_its_batch(agent):
    alone = agent.respond([SHORT], [{}], seeds=[7])[0]
    together = agent.respond([LONG, SHORT, LONG], [{}, {}, {}], seeds=[1, 7, 2])[1]  # padded differently
    assert together.token_ids == alone.token_ids
    assert together.logprobs == pytest.approx(alone.logprobs, abs=1e-5)
    other = agent.respond([SHORT] * 4, [{}] * 4, seeds=[8, 9, 10, 11])
    assert any(r.token_ids != alone.token_ids for r in other)  # a different seed draws differently


def test_unseeded_calls_draw_from_the_agents_own_seed(tmp_path):
    folder = build_llama(tmp_path / "m")
    first = HFAgent(str(folder), temperature=1.0, max_new_tokens=8, seed=3).act([SHORT] * 3, [{}] * 3)
    again = HFAgent(str(folder), temperature=1.0, max_new_tokens=8, seed=3).act([SHORT] * 3, [{}] * 3)
    assert [r.token_ids for r in first] == [r.token_ids for r in again]
