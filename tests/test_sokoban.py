"""LMMR1/Sokoban-v0: LMM-R1's plan verifier term by term, gym-sokoban's step dynamics, levels, solver, modes."""

from __future__ import annotations

from collections import deque

import gymnasium as gym
import numpy as np
import pytest

import lmmr1_env  # noqa: F401 - registers LMMR1/*
from lmmr1_agent.agents.scripted import RandomAgent
from lmmr1_agent.agents.sokoban import SokobanSolverAgent
from lmmr1_agent.rollout import play_episodes
from lmmr1_env.datasets import builtin_data
from lmmr1_env.sokoban.env import parse_move
from lmmr1_env.sokoban.generate import PRESETS, canonical_key, generate_level, split_of_level
from lmmr1_env.sokoban.levels import LevelError, level_from_arrays, load_levels, parse_xsb
from lmmr1_env.sokoban.render import TILE, render_frame, render_frame_pil, room_pixels
from lmmr1_env.sokoban.rules import (
    BOX,
    BOX_ON_TARGET,
    FLOOR,
    PLAYER,
    TARGET,
    WALL,
    Level,
    apply_move,
    boxes_on_target,
    is_solved,
    level_text,
    play,
    step_reward,
    step_reward_terms,
)
from lmmr1_env.sokoban.solver import solve
from lmmr1_env.sokoban.verifier import has_repetition, move_count_term, score_plan


def xsb(text: str) -> Level:
    """One level from XSB rows (``_`` may stand for floor)."""
    return parse_xsb(text.replace("_", " "), "test")[0]


# A corridor: target, box, eight floor cells, player. Up/Down bump into walls; the 9th Left solves it.
CORRIDOR = xsb("#############\n#.$________@#\n#############")


def respond(moves: str, think: str = "plan") -> str:
    """A well-formed plan-mode response."""
    return f"<think>{think}</think><answer>{moves}</answer>"


# ---- the plan verifier, term by term ----

def test_format_failures_score_zero():
    for response in [
        "",
        "Left",                                                      # no tags
        "<answer>Left</answer>",                                     # no think
        "<think>a</think><think>b</think><answer>Left</answer>",     # two <think>
        "<think>a</think><answer>Left</answer></answer>",            # two </answer>
        "<think>a</think><answer>Left",                              # no </answer>
        respond(""),                                                 # empty answer
        respond("   "),
        respond("Left,"),                                            # trailing comma
        respond("Left,, Up"),                                        # empty item
        respond("Left Up"),                                          # no comma
        respond("Left, Jump"),                                       # illegal word
        respond("L, U"),
        respond("Left; Up"),
        respond("<b>Left</b>"),
    ]:
        score = score_plan(response, CORRIDOR)
        assert score.reward == 0.0 and score.moves is None and score.parse_error, response
        assert score.terms == {"task": 0.0, "format": 0.0, "move_count": 0.0, "thinking": 0.0}


def test_format_counts_tags_only_order_and_surrounding_text_are_not_checked():
    for response in ["<answer>Left</answer><think>hm</think>", "Sure! <think>hm</think> so: <answer>Left</answer> ok",
                     "<think>hm</think>\n\n<answer> left ,  LEFT </answer>"]:
        score = score_plan(response, CORRIDOR)
        assert score.parse_error is None and score.terms["format"] == 0.5, response


def test_move_words_are_case_insensitive_and_stripped():
    score = score_plan(respond(" LEFT ,left,  Left\t"), CORRIDOR)
    assert score.moves == ["Left", "Left", "Left"]
    assert score.terms["move_count"] == 3 * 0.05


def test_eos_tokens_are_stripped_anywhere_then_whitespace():
    base = respond("Left")
    deepseek_end = "<\uff5cend\u2581of\u2581sentence\uff5c>"
    for response in [base + "<|im_end|>", base + "<|endoftext|>\n", "  " + base + deepseek_end,
                     "<think>pl<|im_end|>an</think><answer>Left</answer>", base + "<end_of_turn>",
                     "<think>plan</think><answer>Le<end_of_turn>ft</answer>"]:
        assert score_plan(response, CORRIDOR).reward == score_plan(base, CORRIDOR).reward, response


def test_every_env_strips_the_same_end_tokens():
    """One strip_eos for all envs: a Gemma-style ``<end_of_turn>`` inside the answer scores as without it."""
    from lmmr1_env.rewards import score_math

    gemma = "<think>7 + 5 = 12</think><answer>1<end_of_turn>2</answer>"
    assert score_math(gemma, "12", mode="answer").reward == 1.5
    assert score_plan("<think>plan</think><answer>Le<end_of_turn>ft</answer>", CORRIDOR).reward == score_plan(
        respond("Left"), CORRIDOR).reward


def test_seven_lefts_keep_the_move_term_eight_lose_it():
    seven = score_plan(respond(", ".join(["Left"] * 7)), CORRIDOR)
    eight = score_plan(respond(", ".join(["Left"] * 8)), CORRIDOR)
    assert not seven.repeated and seven.terms == {"task": 0.0, "format": 0.5, "move_count": 7 * 0.05,
                                                  "thinking": 0.001}
    assert seven.reward == 0.0 + 0.5 + 7 * 0.05 + 0.001
    assert eight.repeated and eight.terms["move_count"] == 0.0 and eight.reward == 0.5 + 0.001


def test_solving_move_scores_the_best_cumulative_reward():
    score = score_plan(respond(", ".join(["Left"] * 9)), CORRIDOR)
    # Eight walking steps at -0.1, then the push: -0.1 + 1 + 10, added up as gym-sokoban does.
    expected = 0.0
    for _ in range(8):
        expected += -0.1
    expected += (-0.1 + 1.0) + 10.0
    assert score.solved and score.terms["task"] == expected
    assert score.terms["move_count"] == 0.0  # nine Lefts repeat
    assert score.reward == expected + 0.5 + 0.0 + 0.001


def test_replay_stops_when_solved_and_best_is_kept():
    # Pushing the box on, then (were play to go on) off again: play stops at the solve.
    level = xsb("#######\n#_.$@_#\n#######")
    score = score_plan(respond("Left, Left, Right, Right"), level)
    assert score.solved and score.step_rewards == [-0.1 + 1.0 + 10.0]
    # Unsolved: the best running total, never below the start of 0.
    two = xsb("########\n#_.$@$.#\n#______#\n########")
    score = score_plan(respond("Left, Left"), two)
    assert score.step_rewards == [-0.1 + 1.0, -0.1 - 1.0] and score.terms["task"] == -0.1 + 1.0


def test_only_the_first_fifty_moves_are_played_but_all_count():
    # 45 Rights bump the wall, then 9 Lefts would solve it at move 54: past the cap, never played.
    moves = ["Right"] * 45 + ["Left"] * 9
    score = score_plan(respond(", ".join(moves)), CORRIDOR)
    assert not score.solved and len(score.step_rewards) == 50 and score.terms["task"] == 0.0
    # n = 54 moves written: 1.0 - 0.2 * (34/30)^2, then the repetition penalty.
    assert score.terms["move_count"] == pytest.approx(min(0.0, 1.0 - 0.2 * (34 / 30) ** 2 - 0.2))
    # The same plan with the solve inside the cap earns it.
    score = score_plan(respond(", ".join(["Right"] * 41 + ["Left"] * 9)), CORRIDOR)
    assert score.solved and len(score.step_rewards) == 50


def test_move_count_term_below_and_from_twenty():
    assert [move_count_term(n) for n in (0, 1, 19)] == [0.0, 0.05, 19 * 0.05]
    assert move_count_term(20) == pytest.approx(1.0)
    assert move_count_term(26) == pytest.approx(1.0 - 0.2 * (6 / 30) ** 2)
    assert move_count_term(50) == pytest.approx(0.8)
    assert move_count_term(200) == pytest.approx(1.0 - 0.2 * 36)  # no lower bound
    # Through the verifier: 26 moves cycling Up, Left, Down, Right (each 4-gram back-to-back 6 times) keep
    # the term; 36 moves (9 times) lose it.
    cycle = ["Up", "Left", "Down", "Right"]
    score = score_plan(respond(", ".join((cycle * 7)[:26])), CORRIDOR)
    assert not score.repeated and score.terms["move_count"] == pytest.approx(1.0 - 0.2 * (6 / 30) ** 2)
    score = score_plan(respond(", ".join(cycle * 9)), CORRIDOR)
    assert score.repeated and score.terms["move_count"] == 0.0


def test_repetition_rule_quirks():
    assert has_repetition("left " * 8) and not has_repetition("left " * 7)
    assert has_repetition("left, right, " * 8) and not has_repetition("left, right, " * 7)
    # An interrupted run restarts the count.
    assert not has_repetition("up " * 7 + "down " + "up " * 7)
    # A large answer that is not repetitive at k <= 5 words stays unpenalised.
    assert not has_repetition("up up left down down right up left left down right right down " * 1)


def test_thinking_term_counts_single_space_pieces_longer_than_one_character():
    score = score_plan("<think> a  bb\tcc dd\nee x </think><answer>Left</answer>", CORRIDOR)
    assert score.thinking_words == 2 and score.terms["thinking"] == 0.002
    score = score_plan(respond("Left", think=" ".join(["word"] * 150)), CORRIDOR)
    assert score.terms["thinking"] == 150 * 0.001
    score = score_plan(respond("Left", think=" ".join(["word"] * 500)), CORRIDOR)
    assert score.terms["thinking"] == 0.2


def test_terms_sum_exactly_to_the_reward():
    for response in [respond("Left, Left, Up", think="I go left a lot"), respond(", ".join(["Left"] * 9)),
                     respond(", ".join(["Right", "Left"] * 30))]:
        score = score_plan(response, CORRIDOR)
        assert sum(score.terms.values()) == pytest.approx(score.reward, abs=1e-12)


# ---- step dynamics and reward constants ----

def test_push_walk_and_blocking():
    level = xsb("#######\n#_$$@_#\n#_.__.#\n#######")
    state, fixed = level.room_state.copy(), level.room_fixed
    assert apply_move(state, fixed, "Left") == (False, False)            # two boxes in a row
    assert apply_move(state, fixed, "Up") == (False, False)              # wall
    assert apply_move(state, fixed, "Down") == (True, False)
    assert apply_move(state, fixed, "Left") == (True, False)
    assert apply_move(state, fixed, "Up") == (False, False)              # box against the wall
    assert apply_move(state, fixed, "Left") == (True, False)              # onto the target
    assert state[2, 2] == PLAYER and fixed[2, 2] == TARGET
    assert level_text(state, fixed) == "#######\n#_$$__#\n#_+__.#\n#######"
    assert apply_move(state, fixed, "Left") == (True, False)
    assert state[2, 2] == TARGET                                          # the target shows again
    pushing = xsb("######\n#@$_.#\n######")
    state = pushing.room_state.copy()
    assert apply_move(state, pushing.room_fixed, "Right") == (True, True)
    assert apply_move(state, pushing.room_fixed, "Right") == (True, True)
    assert state[1, 4] == BOX_ON_TARGET and state[1, 3] == PLAYER
    assert apply_move(state, pushing.room_fixed, "Right") == (False, False)  # box against the wall


def test_gym_sokoban_reward_constants_on_a_hand_built_room():
    level = xsb("#######\n#@$_.$#\n#____.#\n#######")
    state, fixed = level.room_state.copy(), level.room_fixed
    rewards = []
    for move in ["Right", "Right", "Right", "Left"]:
        before = boxes_on_target(state)
        apply_move(state, fixed, move)
        rewards.append(step_reward_terms(before, boxes_on_target(state), is_solved(state, fixed)))
    assert [r["box_on_target"] for r in rewards] == [0.0, 1.0, 0.0, 0.0]
    assert all(r["step_penalty"] == -0.1 for r in rewards) and all(r["solved"] == 0.0 for r in rewards)
    # Box pushed off a target: -1.
    off = xsb("######\n#@*__#\n######")
    state = off.room_state.copy()
    apply_move(state, off.room_fixed, "Right")
    assert step_reward_terms(1, boxes_on_target(state), False)["box_on_target"] == -1.0
    # The solving push: -0.1 + 1 + 10, terms in gym-sokoban's order of addition.
    assert step_reward(0, 1, True) == -0.1 + 1.0 + 10.0 == sum(step_reward_terms(0, 1, True).values())
    assert step_reward(1, 0, False) == -0.1 - 1.0 and step_reward(0, 0, False) == -0.1


# ---- levels: XSB, .npy, generation, splits ----

STARRED = """; 0
#######
#+ $  #
# *   #
#  .$ #
#######

; 1 The second level
  ####
###@ #
#  $.#
#    #
######
"""


def test_xsb_keeps_targets_under_boxes_and_player():
    first, second = parse_xsb(STARRED, "starred.xsb")
    assert first.room_state[1, 1] == PLAYER and first.room_fixed[1, 1] == TARGET
    assert first.room_state[2, 2] == BOX_ON_TARGET and first.room_fixed[2, 2] == TARGET
    assert first.room_state[1, 3] == BOX and first.room_fixed[1, 3] == FLOOR
    assert int((first.room_fixed == TARGET).sum()) == 3 and first.num_boxes == 3
    assert first.index == 0 and "level 0 of starred.xsb" in first.name
    assert second.index == 1 and "The second level" in second.name
    assert second.room_state[0, 0] == WALL  # outside the walls becomes wall
    assert level_text(first.room_state, first.room_fixed).splitlines()[1] == "#+_$__#"
    result = solve(first.room_fixed, first.room_state)
    assert result.solved and play(first, result.moves)[1]


def test_xsb_errors_name_the_level_and_file(tmp_path):
    with pytest.raises(LevelError, match=r"level 1 of bad.xsb.*: 2 boxes but 3 targets"):
        parse_xsb("#####\n#@$.#\n#####\n\n#######\n#@$$..#\n#.    #\n#######\n", "bad.xsb")
    with pytest.raises(LevelError, match="level 0 of open.xsb: the room is not closed"):
        parse_xsb("## ##\n#@$.#\n#####\n", "open.xsb")
    with pytest.raises(LevelError, match="2 players"):
        parse_xsb("######\n#@$.@#\n######\n", "two.xsb")
    with pytest.raises(LevelError, match="no XSB levels"):
        parse_xsb("; just a comment\n", "empty.xsb")
    with pytest.raises(LevelError, match="not found"):
        load_levels(tmp_path / "missing.xsb")


def test_npy_levels(tmp_path):
    level = xsb("######\n#@$.*#\n######")
    np.save(tmp_path / "a.npy", level.room_state)
    np.save(tmp_path / "b.npy", np.stack([level.room_fixed, level.room_state]))
    loaded = load_levels(tmp_path)
    assert [lv.index for lv in loaded] == [0, 1]
    for lv in loaded:
        assert (lv.room_state == level.room_state).all() and (lv.room_fixed == level.room_fixed).all()
    # A bare room_state with the player on a target cannot say so.
    on_target = xsb("#####\n#+$_#\n#_$.#\n#####")
    with pytest.raises(LevelError, match=r"2 boxes but 1 targets.*\[room_fixed, room_state\]"):
        level_from_arrays(on_target.room_state, "lost.npy")
    env = gym.make("LMMR1/Sokoban-v0", levels=str(tmp_path))
    _, info = env.reset(seed=3)
    assert info["level_index"] == 1


def test_generated_levels_match_the_preset_and_splits_are_disjoint():
    for name, preset in PRESETS.items():
        level = generate_level(name, "train", 0)
        assert level.room_state.shape == preset.dim and level.num_boxes == preset.num_boxes
        assert int((level.room_fixed == TARGET).sum()) == preset.num_boxes
        assert boxes_on_target(level.room_state) == 0
    train = {canonical_key(generate_level("small-v0", "train", s)) for s in range(40)}
    test = {canonical_key(generate_level("small-v0", "test", s)) for s in range(40)}
    assert not train & test
    assert all(split_of_level(generate_level("small-v1", "test", s)) == "test" for s in range(5))
    mirrored = generate_level("small-v0", "train", 1)
    mirrored.room_fixed, mirrored.room_state = mirrored.room_fixed[:, ::-1], mirrored.room_state[:, ::-1]
    assert canonical_key(mirrored) == canonical_key(generate_level("small-v0", "train", 1))


# ---- the solver ----

def _bfs_moves(level: Level) -> int:
    """Fewest moves by plain breadth-first search over (room_state) — the solver's referee on small rooms."""
    start = level.room_state.tobytes()
    seen = {start}
    queue = deque([(level.room_state, 0)])
    while queue:
        state, depth = queue.popleft()
        for move in ("Up", "Down", "Left", "Right"):
            nxt = state.copy()
            apply_move(nxt, level.room_fixed, move)
            key = nxt.tobytes()
            if key in seen:
                continue
            if is_solved(nxt, level.room_fixed):
                return depth + 1
            seen.add(key)
            queue.append((nxt, depth + 1))
    return -1


def test_solver_is_move_optimal_on_small_levels():
    for seed in range(6):
        level = generate_level("small-v0", "train", seed)
        assert len(solve(level.room_fixed, level.room_state).moves) == _bfs_moves(level), seed
    level = load_levels(builtin_data("sokoban", "starter.xsb"))[1]
    assert len(solve(level.room_fixed, level.room_state).moves) == _bfs_moves(level)


@pytest.mark.parametrize("preset", ["small-v0", "small-v1"])
def test_solver_plan_solves_every_generated_small_level_through_plan_mode(preset):
    env = gym.make("LMMR1/Sokoban-v0", mode="plan", levels=preset)
    agent = SokobanSolverAgent()
    for seed in range(20):
        _, info = env.reset(seed=seed)
        (reply,) = agent.act([[]], [info])
        _, reward, terminated, _, info = env.step(reply.text)
        assert terminated and info["success"], (preset, seed, reply.text)
        n = len(info["moves"])
        if n <= 50:
            assert info["reward_terms"]["task"] == pytest.approx(info["optimal_reward"])
            assert info["magebench_score"] == pytest.approx(100.0)
        assert reward == pytest.approx(sum(info["reward_terms"].values()))


def test_every_starter_level_is_solvable_and_the_plan_solves_it():
    levels = load_levels(builtin_data("sokoban", "starter.xsb"))
    assert len(levels) >= 5
    for level in levels:
        result = solve(level.room_fixed, level.room_state)
        assert result.solved and play(level, result.moves)[1], level.name


def test_solver_budget_and_unsolvable_verdicts():
    level = load_levels(builtin_data("sokoban", "starter.xsb"))[6]
    out = solve(level.room_fixed, level.room_state, max_states=5)
    assert out.status == "budget" and not out.solved and out.moves is None
    out = solve(level.room_fixed, level.room_state, time_limit=0.0)
    assert out.status == "budget"
    dead = xsb("######\n#$_@.#\n######")  # the box is in a corner
    assert solve(dead.room_fixed, dead.room_state).status == "unsolvable"
    env = gym.make("LMMR1/Sokoban-v0", levels="starter", solver_max_states=5)
    env.reset(seed=6)
    _, _, _, _, info = env.step(respond("Up"))
    assert info["magebench_score"] is None and info["optimal_status"] == "budget"


# ---- the env in both modes ----

def test_plan_mode_info_and_magebench_score():
    env = gym.make("LMMR1/Sokoban-v0", levels="starter")
    obs, info = env.reset(seed=0)  # "#@ $ .#": Right, Right, Right solves it
    assert info["level_index"] == 0 and info["actions"] == ["Left", "Right", "Up", "Down"]
    assert "#@_$_.#" in obs["text"] and obs["image"].shape == (224, 224, 3)
    _, reward, terminated, truncated, info = env.step(respond("Right, Right, Right"))
    optimal = -0.1 + -0.1 + (-0.1 + 1.0 + 10.0)
    assert terminated and not truncated and info["success"]
    assert info["optimal_reward"] == optimal and info["magebench_score"] == 100.0
    assert reward == optimal + 0.5 + 0.15 + 0.001
    env.reset(seed=0)
    _, _, _, _, info = env.step(respond("Left, Right, Right, Right"))  # one wasted move
    assert info["magebench_score"] == pytest.approx(100.0 - 5 * 0.1)
    env.reset(seed=0)
    _, reward, _, _, info = env.step("no idea")
    assert reward == 0.0 and info["parse_error"] and info["magebench_score"] == pytest.approx(100 - 5 * optimal)


def test_step_mode_episode_with_the_solver_agent():
    make = lambda: gym.make("LMMR1/Sokoban-v0", mode="step", levels="small-v1")  # noqa: E731
    episodes = list(play_episodes(make, SokobanSolverAgent(), [0, 1, 2], batch_size=3))
    for episode in episodes:
        assert episode.success and not episode.truncated
        assert episode.final_info["magebench_score"] == pytest.approx(100.0)
        assert episode.total_return == pytest.approx(episode.final_info["optimal_reward"])
        assert episode.turns[-1].reward_terms["solved"] == 10.0
    randoms = list(play_episodes(make, RandomAgent(seed=0), [0], max_turns=5))
    assert len(randoms[0].turns) == 5 and randoms[0].parse_errors == 0


def test_step_mode_parse_errors_and_truncation():
    env = gym.make("LMMR1/Sokoban-v0", mode="step", levels="starter", max_steps=3)
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step("<answer>Jump</answer>")
    assert reward == -0.1 and info["parse_error"] and info["move"] is None and not (terminated or truncated)
    _, reward, _, _, info = env.step("<think>x</think><answer>Left, Right</answer>")
    assert "one move per turn" in info["parse_error"] and reward == -0.1
    _, reward, terminated, truncated, info = env.step("right")
    assert info["move"] == "Right" and info["moved"] and truncated and not terminated
    assert info["magebench_score"] is not None
    with pytest.raises(RuntimeError):
        env.step("<answer>Right</answer>")
    assert parse_move("<think>hmm</think><answer> Up. </answer><|im_end|>") == ("Up", None)
    assert parse_move("")[0] is None


def test_given_level_and_attributes():
    env = gym.make("LMMR1/Sokoban-v0", mode="step", image_size=(64, 96))
    level = xsb("#####\n#@$.#\n#####")
    obs, _ = env.reset(options={"level": {"room_fixed": level.room_fixed, "room_state": level.room_state}})
    assert obs["image"].shape == (64, 96, 3)
    assert (env.unwrapped.room_state == level.room_state).all()
    _, reward, terminated, _, info = env.step("<answer>Right</answer>")
    assert terminated and info["success"] and reward == -0.1 + 1.0 + 10.0
    assert env.unwrapped.room_state[1, 3] == BOX_ON_TARGET
    with pytest.raises(ValueError, match="mode"):
        gym.make("LMMR1/Sokoban-v0", mode="chess")
    with pytest.raises(ValueError, match="unknown Sokoban levels"):
        gym.make("LMMR1/Sokoban-v0", levels="huge-v9")


def test_frames_use_one_tile_per_cell():
    level = xsb("#######\n#+$_*_#\n#######")
    pixels = room_pixels(level.room_state, level.room_fixed)
    assert pixels.shape == (3 * TILE, 7 * TILE, 3)
    tiles = [pixels[TILE:2 * TILE, c * TILE:(c + 1) * TILE].tobytes() for c in range(7)]
    # wall, player on target, box, floor, box on target: five different tiles
    assert len({tiles[0], tiles[1], tiles[2], tiles[3], tiles[4]}) == 5


def test_numpy_frames_match_the_pil_letterbox():
    for name in PRESETS:
        level = generate_level(name, "train", 0)
        for size in [(224, 224), (64, 96), (100, 333)]:
            fast = render_frame(level.room_state, level.room_fixed, size)
            reference = render_frame_pil(level.room_state, level.room_fixed, size)
            assert fast.shape == reference.shape == (*size, 3)
            assert (fast != reference).any(axis=2).mean() < 0.001  # PIL's fixed-point rounding, at most


def test_demonstration_scores_full_marks():
    for mode in ("plan", "step"):
        env = gym.make("LMMR1/Sokoban-v0", mode=mode)
        user, assistant = env.get_wrapper_attr("demonstration")
        rows = [line for line in user["content"].splitlines() if line.startswith("#")]
        level = xsb("\n".join(rows))
        env.reset(options={"level": {"room_fixed": level.room_fixed, "room_state": level.room_state}})
        _, _, terminated, _, info = env.step(assistant["content"])
        assert terminated and info["success"] and info["magebench_score"] == 100.0, mode
        assert "parse_error" not in info
