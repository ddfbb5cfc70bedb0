"""Ray: env runners and the learner as actors on real clusters (local, and one started separately)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

import tests.toy_env  # noqa: F401  (registers the toy envs here; the actors import them by module name)
from lmmr1_agent.train import run_stage
from tests.conftest import local_ray
from tests.test_train import tiny_config

ROOT = Path(__file__).resolve().parents[1]
RAY_CLI = str(Path(sys.executable).parent / "ray")
STORE = 256 * 1024**2
# Env ids carry their module so that runner processes can import them.
DIGITS = [{"id": "tests.toy_env:Toy/Digits-v0", "weight": 1.0, "kwargs": {}}]
SLOW_DIGITS = [{"id": "tests.toy_env:Toy/SlowDigits-v0", "weight": 1.0, "kwargs": {}}]
RAY_PROCESS = "raylet|gcs_server|ray::|default_worker.py"


def _ray_processes() -> list[str]:
    out = subprocess.run(["pgrep", "-af", RAY_PROCESS], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


def _wait_until_no_ray_process(timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := _ray_processes()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory):
    """One local cluster for the module's tests (docs/machine.md's settings); nothing of it is left afterwards.

    Its processes see ``LMMR1_TOY_PIDS``: where SlowDigits envs leave the pid of the runner playing them.
    """
    pids = tmp_path_factory.mktemp("runner-pids")
    with local_ray(4, LMMR1_TOY_PIDS=str(pids)):
        yield pids
    assert not _wait_until_no_ray_process(), "Ray processes left behind"


@pytest.fixture(scope="module")
def in_process_step(tiny_llama, tmp_path_factory):
    """One training step in this process (the reference the Ray runs must equal)."""
    out = tmp_path_factory.mktemp("in-process")
    summary = run_stage(tiny_config(tiny_llama, out, envs=DIGITS, num_steps=1, eval_prompts=8, threads=1),
                        progress=False)
    return load_file(out / "fre" / "final" / "model.safetensors"), summary


def _assert_same_weights(folder: Path, reference: dict) -> None:
    weights = load_file(folder / "fre" / "final" / "model.safetensors")
    worst = max((weights[k] - reference[k]).abs().max().item() for k in reference)
    assert worst < 1e-6, worst


def _metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "fre" / "metrics.jsonl").read_text().splitlines()]


def test_two_runners_give_the_in_process_first_update(tiny_llama, tmp_path, local_cluster, in_process_step):
    reference, local = in_process_step
    summary = run_stage(tiny_config(tiny_llama, tmp_path, envs=DIGITS, num_steps=1, eval_prompts=8,
                                    num_env_runners=2), progress=False)
    _assert_same_weights(tmp_path, reference)
    assert summary["before"] == local["before"] and summary["after"] == local["after"]
    [row] = _metrics(tmp_path)
    assert row["ray/runner_restarts"] == 0 and row["ray/weights_version"] == 1
    assert row["rollout/episodes"] == 4 * 8


def test_a_runner_killed_mid_rollout_is_restarted_and_its_groups_replayed(tiny_llama, tmp_path, local_cluster,
                                                                         in_process_step):
    """SIGKILL one runner's process while it plays step 1: the step completes with every group, re-played from
    the same seeds (so the update equals the undisturbed in-process one), and the metrics count one restart."""
    pids = local_cluster
    killed: list[int] = []

    def kill_the_first_runner_seen():
        deadline = time.monotonic() + 600  # a loaded machine can take minutes to start the actors
        while not killed and time.monotonic() < deadline:
            seen = sorted(pids.iterdir())
            if seen:
                killed.append(int(seen[0].name))
                os.kill(killed[0], signal.SIGKILL)
            time.sleep(0.02)

    killer = threading.Thread(target=kill_the_first_runner_seen, daemon=True)
    killer.start()
    try:
        run_stage(tiny_config(tiny_llama, tmp_path / "run", envs=SLOW_DIGITS, num_steps=1, eval_prompts=8,
                              num_env_runners=2), progress=False)
    finally:
        killer.join(timeout=5)
    assert killed, "no runner was seen playing"
    [row] = _metrics(tmp_path / "run")
    assert row["ray/runner_restarts"] == 1
    assert row["rollout/episodes"] == 4 * 8
    _assert_same_weights(tmp_path / "run", in_process_step[0])


def test_a_dead_learner_stops_the_run_clearly_and_the_rerun_resumes(tiny_llama, tmp_path, local_cluster, capsys):
    """SIGKILL the learner actor after the step-1 checkpoint: LearnerDied names what to do; rerunning resumes."""
    from lmmr1_agent.learner.workers import LearnerDied

    config = tiny_config(tiny_llama, tmp_path, envs=SLOW_DIGITS, num_steps=3, eval_prompts=4, save_every=1,
                         num_env_runners=1)
    checkpoint = tmp_path / "fre" / "checkpoints" / "step_000001" / "trainer_state.json"

    def kill_the_learner_after_step_one():
        deadline = time.monotonic() + 600  # a loaded machine can take minutes to start the actors
        while time.monotonic() < deadline:
            if checkpoint.is_file():
                out = subprocess.run(["pgrep", "-f", "ray::LearnerActor"], capture_output=True, text=True).stdout
                for pid in out.split():
                    os.kill(int(pid), signal.SIGKILL)
                if out.split():
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_learner_after_step_one, daemon=True)
    killer.start()
    with pytest.raises(LearnerDied, match="rerun the same command to resume"):
        run_stage(config, progress=False)
    killer.join(timeout=5)
    capsys.readouterr()
    summary = run_stage(config, progress=False)
    assert "resuming fre from step_0000" in capsys.readouterr().err
    assert [r["step"] for r in _metrics(tmp_path)] == [1, 2, 3]
    assert summary["after"]["step"] == 3


def _free_ports(count: int) -> list[int]:
    probes = [socket.socket() for _ in range(count)]
    for probe in probes:
        probe.bind(("127.0.0.1", 0))
    ports = [probe.getsockname()[1] for probe in probes]
    for probe in probes:
        probe.close()
    return ports


def test_training_on_a_cluster_started_separately(tiny_llama, tmp_path):
    """A two-node cluster from `ray start` (head: 1 CPU, second node: 2 CPUs, so the learner and the two runners
    cannot all sit on one node), two training steps through the CLI joined by address, then `ray stop`."""
    import ray

    ray.shutdown()  # this process must not hold a cluster of its own
    port, node_manager, object_manager = _free_ports(3)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    common = [f"--object-store-memory={STORE}", "--disable-usage-stats"]
    head = [RAY_CLI, "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false", *common]
    node = [RAY_CLI, "start", f"--address=127.0.0.1:{port}", "--num-cpus=2", f"--node-manager-port={node_manager}",
            f"--object-manager-port={object_manager}", "--min-worker-port=20000", "--max-worker-port=20999", *common]
    try:
        for command in (head, node):
            subprocess.run(command, env=env, check=True, capture_output=True, timeout=120)
        args = ["--stage", "fre", "--model", str(tiny_llama), "--env", "LMMR1/TextMath-v0", "--num-steps", "2",
                "--rollout-batch-size", "2", "--n-samples-per-prompt", "2", "--train-batch-size", "4",
                "--micro-train-batch-size", "4", "--generate-max-len", "8", "--eval-prompts", "2",
                "--no-demonstration", "--num-env-runners", "2", "--ray-address", f"127.0.0.1:{port}",
                "--output-dir", str(tmp_path), "--no-progress"]
        done = subprocess.run([sys.executable, "-m", "lmmr1_agent.train", *args], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        subprocess.run([RAY_CLI, "stop", "--force"], env=env, capture_output=True, timeout=120)
    rows = _metrics(tmp_path)
    assert [r["step"] for r in rows] == [1, 2] and rows[-1]["ray/weights_version"] == 2
    assert (tmp_path / "fre" / "final" / "summary.json").is_file()
    assert not _wait_until_no_ray_process(), "Ray processes left behind"


def test_colocate_puts_each_learner_rank_and_its_runner_in_one_bundle(tiny_llama, tmp_path, local_cluster):
    """``--colocate``: learner rank 0 and runner 0 share bundle 0 of one placement group (one node, one group), and
    a step trains there."""
    import ray

    from lmmr1_agent.learner.ray_workers import RayWorkers
    from lmmr1_agent.learner.samples import episodes_to_samples

    config = tiny_config(tiny_llama, tmp_path, envs=DIGITS, num_steps=1, eval_prompts=2, num_env_runners=1,
                         colocate=True)
    workers = RayWorkers(config, str(tiny_llama))
    try:
        learner, runner = ray.get([workers.learners[0].placement.remote(), workers.runners[0].placement.remote()])
        assert learner == runner and learner[1] == workers.group.id.hex()
        metrics = workers.update(episodes_to_samples(*workers.collect(0)))
        assert metrics["ray/weights_version"] == 1
    finally:
        workers.close()


def test_a_placement_the_cluster_cannot_hold_is_a_clear_error(tiny_llama, tmp_path, local_cluster, monkeypatch):
    from lmmr1_agent.learner import ray_workers
    from lmmr1_agent.learner.config import ConfigError

    monkeypatch.setattr(ray_workers, "PLACEMENT_TIMEOUT_S", 2)
    config = tiny_config(tiny_llama, tmp_path, envs=DIGITS, num_steps=1, num_env_runners=1, colocate=True,
                         learner_num_gpus=1.0)  # this cluster has no GPU
    with pytest.raises(ConfigError, match="could not place 1 bundles"):
        ray_workers.RayWorkers(config, str(tiny_llama))
