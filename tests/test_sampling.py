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


def test_the_row_sampler_draws_from_the_tempered_softmax_without_banned_tokens():
    import torch

    from lmmr1_agent.agents.hf import RowSampler

    logits = torch.tensor([0.0, 1.0, 2.0, -1.0, 0.5, 3.0, 0.0, 9.0])
    rows = 20000
    sampler = RowSampler(range(rows), temperature=2.0, banned=[5, 7])
    drawn = sampler(None, logits.repeat(rows, 1)).argmax(dim=-1)
    expected = torch.softmax(logits.index_fill(0, torch.tensor([5, 7]), float("-inf")) / 2.0, dim=-1)
    share = torch.bincount(drawn, minlength=8).float() / rows
    assert share[5] == 0 and share[7] == 0
    assert torch.allclose(share, expected, atol=0.015)  # ~4 standard errors at 20k draws
    assert torch.allclose(sampler.logprobs[0], expected.log()[drawn])
