"""LMMR1/FootballGame-v0: each rule of the game and of MageBench's reward, on hand-built states."""

from __future__ import annotations

import numpy as np
import pytest

from lmmr1_agent.agents.football import FootballHeuristicAgent
from lmmr1_env.football import reward as rw
from lmmr1_env.football.actions import ACTION_IDS, parse_action
from lmmr1_env.football.env import FootballEnv
from lmmr1_env.football.physics import CONTROL_HEIGHT
from lmmr1_env.football.scenarios import Scenario, load_scenarios, select_scenarios, subsets
from lmmr1_env.football.sim import Command, Match

RIGHT = "<answer>action_right</answer>"


def build(left, right, ball, difficulty=0.0, seed=0) -> Match:
    """A hand-built match: the left player nearest ``ball`` owns it (index 0 is each side's goalkeeper)."""
    scenario = Scenario(id="test", ball=tuple(ball), left=np.array(left, float), right=np.array(right, float),
                        left_roles=("GK",) + ("CM",) * (len(left) - 1),
                        right_roles=("GK",) + ("CB",) * (len(right) - 1), config={})
    return Match.from_scenario(scenario, np.random.default_rng(seed), difficulty)


def play_from(match: Match) -> FootballEnv:
    env = FootballEnv(image_size=64, panel=False)
    env.reset(seed=0)
    env.set_match(match)
    return env


def far_defence():
    """Two opponents far from the action: a keeper up the right wing and one deep on the left."""
    return [(0.6, 0.4), (-0.6, 0.4)]


# ---- scenarios ----
def test_shipped_file_has_108_unique_scenarios_on_the_field():
    scenarios = load_scenarios()
    assert len(scenarios) == 108 and len(set(scenarios)) == 108
    named = subsets()
    assert sorted(named["all"]) == sorted(scenarios)
    assert len(named["mini"]) == 20 and set(named["mini"]) <= set(scenarios)
    reduced = {s.id: (len(s.left), len(s.right)) for s in scenarios.values() if (len(s.left), len(s.right)) != (11, 11)}
    assert reduced == {"R1_P_4": (7, 8), "R5_P_1": (6, 9), "R5_P_2": (8, 10), "R5_P_3": (7, 9)}
    for s in scenarios.values():
        every = np.concatenate([s.left, s.right, np.array([s.ball])])
        assert np.all(np.abs(every[:, 0]) <= 1.0) and np.all(np.abs(every[:, 1]) <= 0.42), s.id
        assert s.right[np.array(s.right_roles) == "GK"][0, 0] > 0.7  # mirrored: their keeper guards x = +1


def test_scenario_selection_by_id_subset_list_and_seed():
    assert select_scenarios("R3_T_2") == ["R3_T_2"]
    assert len(select_scenarios("mini")) == 20 and len(select_scenarios("all")) == 108
    assert select_scenarios(["R1_P_1", "R9_T_4"]) == ["R1_P_1", "R9_T_4"]
    with pytest.raises(ValueError, match="unknown football scenario"):
        FootballEnv(scenario="R10_X_1")
    env = FootballEnv(scenario=["R1_P_1", "R9_T_4"], image_size=64)
    assert [env.reset(seed=k)[1]["scenario"] for k in range(4)] == ["R1_P_1", "R9_T_4", "R1_P_1", "R9_T_4"]
    env = FootballEnv(scenario="mini", image_size=64)
    assert env.reset(seed=3)[1]["scenario"] == subsets()["mini"][3]


@pytest.mark.parametrize("scenario_id", ["R1_P_4", "R5_P_1", "R5_P_2", "R5_P_3"])
def test_reduced_team_scenarios_load_and_play(scenario_id):
    env = FootballEnv(scenario=scenario_id, image_size=64)
    obs, info = env.reset(seed=0)
    expected = {"R1_P_4": (7, 8), "R5_P_1": (6, 9), "R5_P_2": (8, 10), "R5_P_3": (7, 9)}[scenario_id]
    assert (len(info["state"]["left_team"]), len(info["state"]["right_team"])) == expected
    for action in ACTION_IDS:
        obs, reward, terminated, truncated, info = env.step(f"<answer>{action}</answer>")
        assert sum(info["reward_terms"].values()) == pytest.approx(reward)
        if terminated or truncated:
            break


# ---- parsing ----
@pytest.mark.parametrize("response, expected", [
    ("<think>space ahead</think><answer>action_right</answer>", "action_right"),
    ("<answer> action_shot </answer>", "action_shot"),
    ("# analyze\nI am free.\n# action\naction_top_right", "action_top_right"),
    ("# analyze\n...\n# action\n`action_long_pass`\n", "action_long_pass"),
    ("action_sprint", "action_sprint"),
])
def test_parse_both_answer_formats(response, expected):
    assert parse_action(response) == (expected, None)


@pytest.mark.parametrize("response", ["", "shoot!", "<answer>run fast</answer>", "# action\nkick it",
                                      "\x00\xff junk", "<answer>action_idle</answer>", "x" * 100_000])
def test_junk_is_a_counted_no_op_turn(response):
    action, error = parse_action(response)
    assert action is None and error
    env = FootballEnv(scenario="R1_R_1", image_size=64)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(response)
    assert info["action"] == "action_idle" and info["parse_error"] and info["frames"] == 1
    assert sum(info["reward_terms"].values()) == pytest.approx(reward)


# ---- the game's rules ----
@pytest.mark.parametrize("seed", range(4))
def test_a_shot_from_close_in_is_a_goal(seed):
    env = play_from(build([(-0.98, 0.0), (0.88, 0.0)], far_defence(), (0.895, 0.0), seed=seed))
    env.step("")  # MageBench plays the first turn as a single frame, before its macro-actions start
    _, reward, terminated, truncated, info = env.step("<answer>action_shot</answer>")
    assert terminated and not truncated and info["end"] == "goal" and info["success"]
    assert info["reward_terms"]["goal"] == pytest.approx(rw.SCALE * rw.GOAL_REWARD)
    assert info["reward_terms"]["shot"] == pytest.approx(rw.SCALE * rw.SHOT_CAP)  # clear path, close: capped


def test_running_over_the_touchline_is_out_of_play():
    env = play_from(build([(-0.98, 0.0), (0.0, 0.37)], far_defence(), (0.0, 0.38)))
    for _ in range(30):
        _, _, terminated, truncated, info = env.step("<answer>action_bottom</answer>")
        if terminated or truncated:
            break
    assert terminated and info["end"] == "out_of_play" and not info["success"]


def test_a_tackle_changes_possession_and_ends_the_episode_with_the_ball_lost_term():
    env = play_from(build([(-0.98, 0.0), (0.0, 0.0)], [(0.98, 0.0), (0.02, 0.0)], (0.005, 0.0), difficulty=1.0))
    for _ in range(300):
        _, _, terminated, truncated, info = env.step("")
        if terminated or truncated:
            break
    assert terminated and info["end"] == "ball_lost" and info["state"]["ball_owned_team"] == 1
    expected = rw.SCALE * rw.BALL_LOST_WEIGHT * (1 - info["state"]["steps_left"] / rw.MAX_FRAMES)
    assert info["reward_terms"]["ball_lost"] == pytest.approx(expected) and expected > 0


def _kick(kind: str, seed: int = 0) -> tuple[int, float, int]:
    """Passer at the centre aims right: returns (receiver, highest ball height, frames until received)."""
    match = build([(-0.98, 0.0), (0.0, 0.0), (0.15, 0.1), (0.5, 0.0)], far_defence(), (0.01, 0.0), seed=seed)
    command = Command(direction=np.array([1.0, 0.0]), kick=kind)
    top = 0.0
    for frame in range(120):
        match.step(command if frame == 0 else Command(), controlled=1)
        top = max(top, float(match.ball[2]))
        if match.owner not in (-1, 1):
            return match.owner, top, frame + 1
    raise AssertionError(f"{kind} pass never received")


def test_each_pass_kind_reaches_its_teammate_at_its_height():
    short, long, high = _kick("short"), _kick("long"), _kick("high")
    assert short[0] == 2 and short[1] == 0.0  # the near teammate, along the ground
    assert long[0] == 3 and high[0] == 3  # the far teammate
    assert 0.0 < long[1] < high[1] and high[1] > CONTROL_HEIGHT  # a high pass flies over interceptors


def test_a_received_pass_pays_the_pass_term():
    env = play_from(build([(-0.98, 0.0), (0.0, 0.0), (0.15, 0.1), (0.5, 0.0)], far_defence(), (0.01, 0.0)))
    env.step(RIGHT)  # aim at the far teammate
    _, reward, _, _, info = env.step("<answer>action_long_pass</answer>")
    assert info["frames"] > 2 and info["state"]["ball_owned_player"] == 3 and info["state"]["active"] == 3
    ball = np.array(info["state"]["ball"][:2])
    clear = rw.pass_clear(ball, np.array(info["state"]["right_team"]))
    assert info["reward_terms"]["pass"] == pytest.approx(rw.SCALE * clear, rel=1e-3)


# ---- MageBench's macro-actions ----
def test_the_same_direction_twice_runs_ten_frames_on_an_open_field():
    env = play_from(build([(-0.98, 0.0), (-0.5, 0.0)], far_defence(), (-0.49, 0.0)))
    assert env.step(RIGHT)[4]["frames"] == 1  # the first turn is always one frame
    assert env.step("<answer>action_top</answer>")[4]["frames"] == 1  # a new direction: one frame
    assert env.step("<answer>action_top</answer>")[4]["frames"] == 10  # the same again: runs on
    assert env.step("<answer>action_top</answer>")[4]["frames"] == 10


def test_the_run_stops_before_leaving_the_field():
    env = play_from(build([(-0.98, 0.0), (-0.5, 0.3)], far_defence(), (-0.49, 0.3)))
    env.step("<answer>action_bottom</answer>")
    env.step("<answer>action_sprint</answer>")
    _, _, terminated, _, info = env.step("<answer>action_bottom</answer>")  # prev act was sprint: one frame
    _, _, terminated, _, info = env.step("<answer>action_bottom</answer>")
    assert info["frames"] < 10 and not terminated
    state = info["state"]
    me = np.array(state["left_team"][state["active"]])
    assert abs(me[1] + 3 * state["left_team_direction"][state["active"]][1]) >= 0.42  # stopped by the rule


def test_the_run_stops_when_an_opponent_is_about_to_be_met():
    env = play_from(build([(-0.98, 0.0), (0.0, 0.0)], [(0.98, 0.0), (0.1, 0.0)], (0.01, 0.0)))
    env.step(RIGHT)
    env.step(RIGHT)  # the first turn does not count as the previous action: one frame again
    _, _, terminated, _, info = env.step(RIGHT)
    assert info["frames"] < 10
    assert terminated or not env._keep_moving()


# ---- reward terms (MageBench's get_reward) ----
def _view(ball, owner_team=0, owner=1, opponents=((0.5, 0.0),), steps_left=390, scored=False):
    return rw.FrameView(ball=np.array(ball, float), owner_team=owner_team, owner=owner,
                        opponents=np.array(opponents, float), scored=scored, steps_left=steps_left)


def test_progress_and_bypassed_terms():
    tracker = rw.RewardTracker(_view((0.4, 0.0)))
    assert tracker.frame(_view((0.45, 0.0)), "action_right")["progress"] == pytest.approx(20 * 0.8 * 0.05)
    assert tracker.frame(_view((0.42, 0.0)), "action_left")["progress"] == 0.0  # behind the best x: nothing
    terms = tracker.frame(_view((0.55, 0.0)), "action_right")
    assert terms["progress"] == pytest.approx(20 * 0.8 * 0.10) and terms["bypassed"] == pytest.approx(20 / 11)
    assert tracker.frame(_view((0.45, 0.0)), "action_left")["bypassed"] == pytest.approx(-20 / 11)
    assert tracker.frame(_view((0.9, 0.0), owner_team=-1, owner=-1), "action_right")["progress"] == 0.0


def test_pass_term_decays_by_three_quarters():
    tracker = rw.RewardTracker(_view((0.0, 0.0)))
    values = []
    for receiver in (2, 3):
        tracker.frame(_view((0.0, 0.0), owner=tracker.prev_owner), "action_short_pass")
        tracker.frame(_view((0.1, 0.0), owner_team=-1, owner=-1), "action_builtin_ai")
        values.append(tracker.frame(_view((0.2, 0.1), owner=receiver), "action_idle")["pass"])
    clear = rw.pass_clear(np.array([0.2, 0.1]), np.array([[0.5, 0.0]]))
    assert values == pytest.approx([20 * clear, 20 * clear * 0.75])


def test_shot_term_is_capped_at_two_thirds_and_paid_once_per_possession():
    tracker = rw.RewardTracker(_view((0.8, 0.0), opponents=((0.99, 0.3),)))
    first = tracker.frame(_view((0.8, 0.0), opponents=((0.99, 0.3),)), "action_shot")["shot"]
    again = tracker.frame(_view((0.8, 0.0), opponents=((0.99, 0.3),)), "action_shot")["shot"]
    assert first == pytest.approx(20 * 2 / 3) and again == 0.0
    assert rw.shot_distance(0.75) == 1.0 and rw.shot_distance(0.5) == 0.5 and rw.shot_distance(-0.2) == 0.0
    blocked = rw.shot_value(np.array([0.0, 0.0]), np.array([[0.5, y] for y in np.linspace(-0.05, 0.05, 11)]))
    assert 0.0 <= blocked < 2 / 3


def test_ball_lost_term_grows_with_possession_time():
    tracker = rw.RewardTracker(_view((0.0, 0.0)))
    terms = tracker.frame(_view((0.0, 0.0), owner_team=1, owner=12, steps_left=300), "action_idle")
    assert terms["ball_lost"] == pytest.approx(20 * (1 - 300 / 400)) and tracker.ball_lost


# ---- the whole env ----
def test_reward_terms_sum_to_the_reward_and_info_has_the_contract_keys():
    env = FootballEnv(scenario="mini", image_size=(90, 160))
    rng = np.random.default_rng(0)
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        assert info["actions"] == list(ACTION_IDS) and "state" in info and obs["image"].shape == (90, 160, 3)
        assert "attacks the goal on the right" in obs["text"] and "You control" in obs["text"]
        for _ in range(60):
            action = ACTION_IDS[int(rng.integers(len(ACTION_IDS)))]
            obs, reward, terminated, truncated, info = env.step(f"# analyze\n-\n# action\n{action}")
            assert set(info["reward_terms"]) == set(rw.TERMS)
            assert sum(info["reward_terms"].values()) == pytest.approx(reward)
            if terminated or truncated:
                break
        assert action in obs["text"] or terminated or truncated


def test_the_image_marks_the_controlled_player_in_red():
    env = FootballEnv(scenario="R2_T_1", image_size=(180, 320))
    obs, info = env.reset(seed=0)
    image = obs["image"].astype(int)
    red = (image[..., 0] > 200) & (image[..., 1] < 60) & (image[..., 2] < 60)
    yellow = (image[..., 0] > 230) & (image[..., 1] > 190) & (image[..., 2] < 40)
    blue = (image[..., 2] > 200) & (image[..., 0] < 60)
    assert red.sum() > 10 and yellow.sum() > 50 and blue.sum() > 50
    assert np.array_equal(env.render(), image.astype(np.uint8))


def test_heuristic_beats_idle_on_the_mini_subset():
    env = FootballEnv(scenario="mini", image_size=32, panel=False)
    agent = FootballHeuristicAgent()

    def score(respond) -> float:
        total = 0.0
        for seed in range(20):
            _, info = env.reset(seed=seed)
            done = False
            while not done:
                _, reward, terminated, truncated, info = env.step(respond(info))
                total += reward
                done = terminated or truncated
        return total / 20

    assert score(lambda info: agent.act([[]], [info])[0].text) > score(lambda info: "") + 5.0


def test_harder_opponents_win_the_ball_sooner():
    def frames_until_lost(difficulty: float) -> float:
        total = 0
        for seed in range(6):
            match = build([(-0.98, 0.0), (0.0, 0.0)], [(0.98, 0.0), (0.1, 0.05)], (0.01, 0.0), difficulty, seed)
            env = play_from(match)
            done = False
            while not done:
                _, _, terminated, truncated, info = env.step("")
                done = terminated or truncated
            total += info["frame"]
        return total / 6

    assert frames_until_lost(1.0) < frames_until_lost(0.0)
