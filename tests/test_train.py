"""The learner end to end on tiny random models: it learns, resumes after SIGKILL, and fails clearly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import tests.toy_env  # noqa: F401  (registers Toy/Digits-v0)
from lmmr1_agent.agents.hf import HFAgent
from lmmr1_agent.learner.checkpoint import latest_checkpoint, save_checkpoint
from lmmr1_agent.learner.config import ConfigError, resolve
from lmmr1_agent.train import format_summary, main, run_stage
from tests.tiny_models import build_fastvlm, build_graft, build_llama, build_qwen2, train_command

ROOT = Path(__file__).resolve().parents[1]
TOY = [{"id": "Toy/Digits-v0", "weight": 1.0, "kwargs": {}}]


def tiny_config(model, out, **overrides):
    values = {"stage": "fre", "model": str(model), "envs": TOY, "n_samples_per_prompt": 8, "rollout_batch_size": 4,
              "train_batch_size": 32, "micro_train_batch_size": 16, "generate_max_len": 8, "eval_prompts": 16,
              "actor_learning_rate": 3e-3, "save_every": 100, "output_dir": str(out), "demonstration": False}
    return resolve({**values, **overrides}, {})


def test_a_tiny_model_learns_the_toy_task(tiny_llama, tmp_path):
    summary = run_stage(tiny_config(tiny_llama, tmp_path, num_steps=30), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "fre" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 31))
    first = sum(r["rollout/reward"] for r in rows[:5]) / 5
    last = sum(r["rollout/reward"] for r in rows[-5:]) / 5
    assert last > first + 0.2, (first, last)
    assert summary["after"]["reward"] > summary["before"]["reward"]
    assert all(torch.isfinite(torch.tensor(r["losses/policy"])) for r in rows)
    assert (tmp_path / "fre" / "reward_curve.png").is_file()
    assert list((tmp_path / "fre" / "tensorboard").glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (tmp_path / "fre" / "samples").glob("*.html")) == [
        "eval_step_000000.html", "eval_step_000030.html"]
    records = [json.loads(line) for line in (tmp_path / "fre" / "samples" / "eval_step_000030.jsonl").read_text()
               .splitlines()]
    assert [r["success"] for r in records] == [bool(v) for v in summary["after"]["outcomes"]["accuracy"]]
    assert len(records) == 16 and "change" in format_summary([summary])
    assert (tmp_path / "fre" / "final" / "model.safetensors").is_file()


def test_a_saved_policy_remembers_whether_it_was_trained_with_the_demonstration(tiny_llama, tmp_path):
    """A model trained with the demonstration in its prompts loses its answer format without it: evaluating the
    stage's final folder sends it by default, as training did; an explicit choice still wins."""
    from lmmr1_agent.agents.hf import HFAgent

    for shown in (True, False):
        run_stage(tiny_config(tiny_llama, tmp_path / str(shown), num_steps=1, eval_prompts=2, demonstration=shown),
                  progress=False)
        final = str(tmp_path / str(shown) / "fre" / "final")
        assert HFAgent(final).uses_demonstration is shown
        assert HFAgent(final, demonstration=not shown).uses_demonstration is (not shown)
    assert HFAgent(str(tiny_llama)).uses_demonstration is False  # a folder that says nothing: the user's prompt


def test_kl_penalty_and_reference_model(tiny_llama, tmp_path):
    config = tiny_config(tiny_llama, tmp_path, num_steps=2, init_kl_coef=0.05, advantage_estimator="reinforce_baseline",
                         eval_prompts=4)
    run_stage(config, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "fre" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["losses/kl"] != 0.0


def test_a_resumed_run_keeps_the_stage_start_as_its_kl_reference(tiny_llama, tmp_path):
    """The policy resumes from the checkpoint; the reference must stay the model the stage started from."""
    from lmmr1_agent.learner.workers import LearnerHost

    config = tiny_config(tiny_llama, tmp_path, num_steps=3, init_kl_coef=0.05, save_every=1, eval_prompts=2,
                         advantage_estimator="reinforce_baseline")
    run_stage(config, progress=False)
    checkpoint = latest_checkpoint(tmp_path / "fre")
    host = LearnerHost(config, str(checkpoint))
    trained = {k: v.clone() for k, v in host.learner.reference.state_dict().items()}
    host.restore(str(checkpoint))
    start = HFAgent(str(tiny_llama)).model.state_dict()
    assert any(not torch.equal(trained[k], start[k]) for k in start)  # the checkpoint did train
    assert all(torch.equal(host.learner.reference.state_dict()[k], start[k]) for k in start)


def test_sigkill_then_resume_matches_an_uninterrupted_run(tiny_llama, tmp_path):
    steps = 8
    straight = subprocess.run(train_command(tiny_llama, tmp_path / "straight", steps), cwd=ROOT, capture_output=True,
                              text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr[-2000:]

    victim = subprocess.Popen(train_command(tiny_llama, tmp_path / "killed", steps), cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        done = latest_checkpoint(tmp_path / "killed" / "fre")
        if done is not None and done.name >= "step_000003":
            break
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = latest_checkpoint(tmp_path / "killed" / "fre")
    assert killed_at is not None and not (tmp_path / "killed" / "fre" / "final").exists()
    saved = json.loads((killed_at / "trainer_state.json").read_text())

    resumed = subprocess.run(train_command(tiny_llama, tmp_path / "killed", steps), cwd=ROOT, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming fre from {killed_at.name} (step {saved['step']})" in resumed.stderr
    rows = [json.loads(line) for line in (tmp_path / "killed" / "fre" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, steps + 1))  # nothing lost, nothing twice
    # Same seeds, same RNG states, same optimizer moments: the resumed run ends exactly where the straight one does.
    from safetensors.torch import load_file

    a = load_file(tmp_path / "straight" / "fre" / "final" / "model.safetensors")
    b = load_file(tmp_path / "killed" / "fre" / "final" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # A finished stage is not run again.
    again = subprocess.run(train_command(tiny_llama, tmp_path / "killed", steps), cwd=ROOT, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0 and "already finished" in again.stderr


def test_an_interrupted_checkpoint_never_replaces_the_good_one(tiny_llama, tmp_path):
    from transformers import AutoTokenizer, LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(tiny_llama)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    good = save_checkpoint(tmp_path, 1, model, tokenizer, optimizer, scheduler, {"evals": []})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    original = model.save_pretrained
    model.save_pretrained = lambda folder, **kw: (original(folder, **kw), crash())
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, 2, model, tokenizer, optimizer, scheduler, {"evals": []})
    assert latest_checkpoint(tmp_path) == good
    assert (good / "model.safetensors").is_file() and not (tmp_path / "checkpoints" / "step_000002").exists()


def test_config_errors_are_one_line_and_name_the_problem(tmp_path, capsys):
    for argv, needle in [(["--bogus", "1"], "unrecognized arguments: --bogus"),
                         (["--lr", "abc"], "invalid float value: 'abc'"),
                         (["--stage", "fre", "--advantage-estimator", "grpo"], "advantage_estimator must be one of"),
                         (["--stage", "fre", "--env", "LMMR1/TextMath-v0", "--num-steps", "-1"], "num_steps")]:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert needle in err[-1] and len(err) <= 2, err
    bad = tmp_path / "bad.yaml"
    bad.write_text("stage: fre\nlearning_rate: 1e-5\n")
    with pytest.raises(SystemExit):
        main(["--stage", "fre", "--config", str(bad)])
    assert "unknown config key 'learning_rate'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="gamma must be in"):
        resolve({"gamma": 1.5}, {})


def test_mgt_without_fre_says_what_to_run_first(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--stage", "mgt", "--output-dir", str(tmp_path)])
    assert "run `python -m lmmr1_agent.train --stage fre" in capsys.readouterr().err


def test_help_documents_every_option():
    done = subprocess.run([sys.executable, "-m", "lmmr1_agent.train", "--help"], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0
    from lmmr1_agent.learner.config import FIELDS

    for name, field in FIELDS.items():
        if name not in ("stage", "envs"):
            assert f"--{name.replace('_', '-')}" in done.stdout
            assert field.metadata["doc"].split("(")[0].strip()[:30] in " ".join(done.stdout.split())


@pytest.mark.parametrize("kind", ["fastvlm", "qwen2.5-vl-graft"])
def test_fre_then_mgt_grafts_a_text_fre_result_onto_the_vl_model(tiny_llama, tmp_path, kind):
    """MGT after a text-only FRE starts from FRE's language weights inside the VL model, its vision side copied
    from the base, and trains on images with the vision side frozen."""
    from transformers import AutoModelForImageTextToText, LlamaForCausalLM

    build, frozen = {"fastvlm": (build_fastvlm, ["model.vision_tower.", "model.multi_modal_projector."]),
                     "qwen2.5-vl-graft": (build_graft, ["model.visual."])}[kind]
    base_vl = build(tmp_path / "tiny-vl", tiny_llama)
    run_stage(tiny_config(tiny_llama, tmp_path, num_steps=2, eval_prompts=4), progress=False)
    mgt = tiny_config(base_vl, tmp_path, stage="mgt", num_steps=2, eval_prompts=4, rollout_batch_size=2,
                      n_samples_per_prompt=4, max_pixels=56 * 56, freeze_prefix=frozen,
                      envs=[{"id": "LMMR1/VisualMath-v0", "weight": 1.0,
                             "kwargs": {"image_size": [56, 56], "difficulty": 1}}])
    summary = run_stage(mgt, progress=False)
    assert summary["start"] == str(tmp_path / "mgt" / "init")

    def weights(folder, cls=AutoModelForImageTextToText):
        return cls.from_pretrained(folder).state_dict()

    init = weights(tmp_path / "mgt" / "init")
    fre = weights(tmp_path / "fre" / "final", LlamaForCausalLM)
    vision = {k: v for k, v in weights(base_vl).items() if k.startswith(tuple(frozen))}
    assert vision and torch.equal(init["model.language_model.layers.0.mlp.up_proj.weight"],
                                  fre["model.layers.0.mlp.up_proj.weight"])
    assert all(torch.equal(init[k], v) for k, v in vision.items())
    final = weights(tmp_path / "mgt" / "final")
    assert all(torch.equal(final[k], v) for k, v in vision.items())  # frozen, batch-norm statistics included


def test_fre_then_mgt_grafts_a_qwen2_text_fre_result_onto_the_fastvlm(tiny_llama, tmp_path):
    """FRE's text model need not be a Llama: a Qwen2 result (q/k/v biases and all) becomes MGT's language model
    inside the FastVLM base, whose tower and projector carry over."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    frozen = ("model.vision_tower.", "model.multi_modal_projector.")
    base_vl = build_fastvlm(tmp_path / "tiny-vl", tiny_llama)
    qwen2 = build_qwen2(tmp_path / "tiny-qwen2")
    run_stage(tiny_config(qwen2, tmp_path, num_steps=1, eval_prompts=2), progress=False)
    mgt = tiny_config(base_vl, tmp_path, stage="mgt", num_steps=1, eval_prompts=2, rollout_batch_size=2,
                      n_samples_per_prompt=4, freeze_prefix=list(frozen),
                      envs=[{"id": "LMMR1/VisualMath-v0", "weight": 1.0,
                             "kwargs": {"image_size": [32, 32], "difficulty": 1}}])
    assert run_stage(mgt, progress=False)["start"] == str(tmp_path / "mgt" / "init")
    init = AutoModelForImageTextToText.from_pretrained(tmp_path / "mgt" / "init").state_dict()
    fre = AutoModelForCausalLM.from_pretrained(tmp_path / "fre" / "final").state_dict()
    assert init["model.language_model.layers.0.self_attn.q_proj.bias"].abs().sum() > 0
    for name in ("layers.0.self_attn.q_proj.bias", "layers.1.mlp.up_proj.weight", "norm.weight"):
        assert torch.equal(init[f"model.language_model.{name}"], fre[f"model.{name}"]), name
    vision = {k: v for k, v in AutoModelForImageTextToText.from_pretrained(base_vl).state_dict().items()
              if k.startswith(frozen)}
    assert vision and all(torch.equal(init[k], v) for k, v in vision.items())


def test_a_text_fre_result_that_does_not_fit_the_vl_base_is_a_config_error(tiny_llama, tmp_path):
    """A Qwen2 FRE result cannot go into Qwen2.5-VL (the graft is Llama's), nor a wider model into a FastVLM whose
    projector feeds the base's hidden size: a ConfigError naming the base model."""
    from lmmr1_agent.train import graft_fre_result

    qwen2 = build_qwen2(tmp_path / "tiny-qwen2")
    with pytest.raises(ConfigError, match="tiny-graft: FRE's text model is a 'qwen2' model; only a Llama-family"):
        graft_fre_result(qwen2, build_graft(tmp_path / "tiny-graft", tiny_llama), "tiny-graft")
    wide = build_llama(tmp_path / "wide-llama", hidden_size=96)
    with pytest.raises(ConfigError, match="tiny-vl: its vision weights do not fit FRE's llama text model .*size "
                                          "mismatch for model.multi_modal_projector"):
        graft_fre_result(wide, build_fastvlm(tmp_path / "tiny-vl", tiny_llama), "tiny-vl")


def test_fre_on_the_vl_model_then_mgt_continues_from_it(tiny_llama, tmp_path):
    """The default recipe: FRE trains the VL model on text, MGT continues from FRE's result itself."""
    base_vl = build_fastvlm(tmp_path / "tiny-vl", tiny_llama)
    run_stage(tiny_config(base_vl, tmp_path, num_steps=1, eval_prompts=2), progress=False)
    mgt = tiny_config(base_vl, tmp_path, stage="mgt", num_steps=1, eval_prompts=2, rollout_batch_size=2,
                      n_samples_per_prompt=4, freeze_prefix=["model.vision_tower.", "model.multi_modal_projector."],
                      envs=[{"id": "LMMR1/VisualMath-v0", "weight": 1.0,
                             "kwargs": {"image_size": [32, 32], "difficulty": 1}}])
    assert run_stage(mgt, progress=False)["start"] == str(tmp_path / "fre" / "final")


@pytest.mark.parametrize("estimator", ["gae", "rloo", "reinforce", "dr_grpo"])
def test_every_estimator_trains_and_resumes(tiny_llama, tmp_path, estimator):
    """PPO with a critic and the other estimators run end to end; gae's critic is checkpointed and restored."""
    config = tiny_config(tiny_llama, tmp_path, num_steps=2, eval_prompts=4, advantage_estimator=estimator,
                         save_every=1, rollout_batch_size=2, n_samples_per_prompt=4, gamma=1.0)
    run_stage(config, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "fre" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(np.isfinite(r["losses/policy"]) for r in rows)
    last = latest_checkpoint(tmp_path / "fre")
    if estimator == "gae":
        assert "losses/value" in rows[-1] and (last / "critic.pt").is_file()
        from lmmr1_agent.agents.hf import HFAgent
        from lmmr1_agent.learner.checkpoint import load_trainer_state
        from lmmr1_agent.learner.trainer import Learner

        learner = Learner(config, HFAgent(str(last), max_new_tokens=4).policy)
        before = {k: v.clone() for k, v in learner.critic.state_dict().items()}
        load_trainer_state(last, learner.optimizer, learner.scheduler, learner.extra_state())
        saved = torch.load(last / "critic.pt", weights_only=True)
        assert all(torch.equal(learner.critic.state_dict()[k], saved[k]) for k in saved)
        assert any(not torch.equal(before[k], saved[k]) for k in saved)  # the critic did learn


@pytest.mark.parametrize("estimator,aggregation", [("group_norm", "token"), ("group_norm", "sequence"),
                                                   ("dr_grpo", "dr_grpo")])
def test_skipping_zero_advantage_groups_gives_the_update_without_skipping(tiny_llama, estimator, aggregation):
    """Groups whose rewards are all equal are skipped, and the parameters end exactly where an update that trains on
    them lands: a skipped micro-batch, a partly skipped one (rows of several lengths) and an all-skipped optimizer
    step (AdamW still steps, before and after a real one) under every loss aggregation."""
    import dataclasses

    from lmmr1_agent.agents.hf import HFAgent
    from lmmr1_agent.learner.runner import EnvRunner
    from lmmr1_agent.learner.samples import episodes_to_samples
    from lmmr1_agent.learner.trainer import Learner

    config = tiny_config(tiny_llama, "unused", advantage_estimator=estimator, loss_aggregation=aggregation,
                         rollout_batch_size=4, n_samples_per_prompt=4, train_batch_size=8, micro_train_batch_size=3,
                         max_epochs=2, weight_decay=0.1, actor_learning_rate=1e-3)
    agents = [HFAgent(str(tiny_llama), temperature=1.0, max_new_tokens=8) for _ in range(2)]
    samples = episodes_to_samples(*EnvRunner(config, agents[0]).collect(0))
    # groups 0, 1 and 3 all equal (the first optimizer step trains on nothing), group 2 mixed
    rewards = [1.0] * 4 + [0.0] * 4 + [0.0, 0.5, 0.5, 1.0] + [0.3] * 4
    samples = [dataclasses.replace(s, reward=r, response_ids=s.response_ids[: 2 + i % 5],
                                   logprobs=s.logprobs[: 2 + i % 5]) for i, (s, r) in enumerate(zip(samples, rewards))]
    assert [s.group for s in samples] == [g for g in range(4) for _ in range(4)]
    before = {k: v.clone() for k, v in agents[0].model.state_dict().items()}
    runs = []
    for agent, skip in zip(agents, (True, False)):
        learner = Learner(dataclasses.replace(config, skip_zero_advantage_groups=skip), agent.policy)
        # A shared prompt changes the order of float sums with the rows a micro-batch holds, and AdamW turns the
        # last bits of a near-zero gradient into whole steps: compare the arithmetic of the skip bit for bit.
        learner.policy.share_prefix = False
        runs.append((learner.update(samples), agent.model.state_dict()))
    (skipped, with_skip), (full, without_skip) = runs
    assert skipped["rollout/zero_advantage_share"] == 0.75 and full["rollout/zero_advantage_share"] == 0.0
    assert any(not torch.equal(before[k], v) for k, v in without_skip.items())
    for name, value in without_skip.items():
        torch.testing.assert_close(with_skip[name], value, atol=1e-6, rtol=0, msg=name)
    for name in ("losses/policy", "losses/grad_norm"):
        assert skipped[name] == pytest.approx(full[name], rel=1e-4, abs=1e-7), name


def _eval_of(successes, families):
    from lmmr1_agent.learner.runner import summarize_eval
    from lmmr1_agent.rollout import Episode, Turn

    episodes = []
    for seed, (ok, family) in enumerate(zip(successes, families)):
        terms = {"format": 0.5, "accuracy": 1.0 if ok else 0.0}
        episodes.append(Episode("LMMR1/VisualMath-v0", seed, "", turns=[Turn("q", None, "r", sum(terms.values()),
                                                                             terms)],
                                reward_terms=terms, success=ok, final_info={"family": family}))
    return summarize_eval(episodes)


def test_the_summary_reports_the_change_over_the_same_prompts_with_its_paired_error():
    from lmmr1_agent.learner.runner import paired_change

    families = ["clock", "table"] * 10
    before = _eval_of([False] * 20, families)
    after = _eval_of([i % 2 == 0 for i in range(20)], families)  # every clock now right, every table still wrong
    assert after["by_family"] == {"clock": {"accuracy": 1.0, "n": 10}, "table": {"accuracy": 0.0, "n": 10}}
    change, se = paired_change(before, after, "accuracy")
    diffs = np.array([1.0, 0.0] * 10)
    assert change == pytest.approx(0.5) and se == pytest.approx(diffs.std(ddof=1) / np.sqrt(20))
    # The same answers before and after: no change, and no error either (unpaired errors would say ± 0.11).
    assert paired_change(after, after, "accuracy") == (0.0, 0.0)
    # Evaluations from a run that kept no per-prompt outcomes have no paired change, and the table says nothing.
    assert paired_change({"accuracy": 0.1}, after, "accuracy") is None
    table = format_summary([{"stage": "mgt", "before": before, "after": after}])
    assert table.splitlines()[-1] == "mgt    change  +0.500 ± 0.115   +0.000 ± 0.000   +0.500 ± 0.115"
    old = {k: v for k, v in before.items() if k != "outcomes"}
    assert "change" not in format_summary([{"stage": "mgt", "before": old, "after": after}])


@pytest.mark.parametrize("kind", ["llama", "fastvlm"])
def test_a_prompt_the_rows_share_runs_once_with_the_same_logprobs_and_gradients(tiny_llama, tmp_path, kind):
    """Micro-batches of one group (the whole prompt shared, the figure in it), of two groups (text: only the
    opening shared; figures: two images behind the same placeholder tokens, the text before them shared) and of one row:
    log-probs and gradients equal running every row in full."""
    import dataclasses

    from lmmr1_agent.agents.hf import HFAgent
    from lmmr1_agent.learner.runner import EnvRunner
    from lmmr1_agent.learner.samples import episodes_to_samples
    from lmmr1_agent.learner.trainer import Learner

    model = tiny_llama if kind == "llama" else build_fastvlm(tmp_path / "tiny-vl", tiny_llama)
    envs = TOY if kind == "llama" else [{"id": "LMMR1/VisualMath-v0", "weight": 1.0,
                                        "kwargs": {"image_size": [32, 32], "difficulty": 1}}]
    config = tiny_config(model, tmp_path, envs=envs, rollout_batch_size=2, n_samples_per_prompt=3, demonstration=True)
    agent = HFAgent(str(model), temperature=1.0, max_new_tokens=6)
    samples = episodes_to_samples(*EnvRunner(config, agent).collect(0))
    samples = [dataclasses.replace(s, response_ids=s.response_ids[: 2 + i % 4], logprobs=s.logprobs[: 2 + i % 4])
               for i, s in enumerate(samples)]
    learner = Learner(config, agent.policy)
    for micro in (samples[:3], samples, samples[:1]):
        batch = learner.policy.sequences(micro)
        prompt = len(micro[0].prompt_ids)
        learner.policy.share_prefix = True
        shared = learner.policy._shared_prefix(agent.model, batch)
        if len(micro) == 1:
            assert shared == 0
        elif len({tuple(s.prompt_ids) for s in micro}) == 1:
            assert shared == prompt
        elif kind == "llama":
            assert 0 < shared < prompt
        else:  # the figures differ behind the same placeholder tokens: the text before them is shared
            assert 0 < shared == int((batch["input_ids"][0] == agent.model.config.image_token_id).int().argmax())
        results = []
        for share in (True, False):
            learner.policy.share_prefix = share
            agent.model.zero_grad()
            logp, _ = learner.policy.logprobs(batch)
            (logp * batch["mask"]).sum().backward()
            results.append((logp.detach(), {n: p.grad.clone() for n, p in agent.model.named_parameters()
                                            if p.grad is not None}))
        (fast, fast_grads), (full, full_grads) = results
        torch.testing.assert_close(fast, full, atol=1e-5, rtol=1e-4)
        assert fast_grads.keys() == full_grads.keys() and fast_grads
        for name, grad in full_grads.items():
            torch.testing.assert_close(fast_grads[name], grad, atol=1e-5, rtol=1e-3, msg=name)
