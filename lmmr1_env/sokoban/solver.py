"""An optimal Sokoban solver (fewest moves), bounded in states and time.

A* over push states: a state is the set of box cells plus the player's cell right after a push (the player's
exact cell matters for move counts, so states are not normalised to the player's region). A transition is a
shortest walk to a cell next to a box plus the push (cost = walk length + 1). Every move sequence is walks
and pushes, so the first solved state taken off the queue is move-optimal. The heuristic, a lower bound on
pushes and so on moves, is the cheapest assignment of boxes to distinct targets under push distance (walls
only); it is consistent, so A* with a closed set stays optimal. Pruned: pushes onto dead squares (from which
no box can ever reach a target) and pushes that freeze a 2x2 block of boxes and walls holding a box off target.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from lmmr1_env.sokoban.rules import BOX, BOX_ON_TARGET, MOVES, PLAYER, TARGET, WALL

#: Default bound on distinct states stored: measured ~1 KB of Python objects and ~0.1 ms each, so at most
#: ~100 MB and ~10 s. Boxoban's unfiltered, medium and hard levels needed under 20 000.
DEFAULT_MAX_STATES = 100_000
_INF = float("inf")


@dataclass(frozen=True)
class SolveResult:
    """A solver verdict: ``status`` is "solved", "unsolvable" (proved: every state seen) or "budget"."""

    status: str
    #: The move-optimal plan (``["Left", "Up", ...]``) when solved, else None.
    moves: list[str] | None
    #: Distinct states stored.
    states: int
    seconds: float

    @property
    def solved(self) -> bool:
        """True when a plan was found."""
        return self.status == "solved"


class _Board:
    """The static part of a level: floor cells, targets, dead squares and push distances, on flat indices."""

    def __init__(self, room_fixed: np.ndarray, room_state: np.ndarray):
        rows, cols = room_state.shape
        # Pad with a wall ring so neighbours of any floor cell are in range.
        self.cols = cols + 2
        size = (rows + 2) * self.cols
        self.floor = [False] * size
        self.targets: list[int] = []
        self.boxes: list[int] = []
        self.player = -1
        for r in range(rows):
            for c in range(cols):
                cell = (r + 1) * self.cols + c + 1
                fixed, state = int(room_fixed[r, c]), int(room_state[r, c])
                if state != WALL and fixed != WALL:
                    self.floor[cell] = True
                if fixed == TARGET or state in (TARGET, BOX_ON_TARGET):
                    self.targets.append(cell)
                if state in (BOX, BOX_ON_TARGET):
                    self.boxes.append(cell)
                elif state == PLAYER:
                    self.player = cell
        self.deltas = (-self.cols, self.cols, -1, 1)  # in MOVES order: Up, Down, Left, Right
        self.target_set = frozenset(self.targets)
        # Push distance from each cell to each target, walls only: a box at x can be pushed to x+d when
        # x+d is floor and the player can stand at x-d. Reverse search from each target ("pulls").
        self.distance = [self._pull_distances(t) for t in self.targets]
        self.live = [any(d[cell] < _INF for d in self.distance) for cell in range(size)]

    def _pull_distances(self, target: int) -> list[float]:
        dist = [_INF] * len(self.floor)
        dist[target] = 0
        queue = deque([target])
        while queue:
            cell = queue.popleft()
            for d in self.deltas:
                before, player = cell - d, cell - 2 * d
                if 0 <= player < len(self.floor) and self.floor[before] and self.floor[player] \
                        and dist[before] == _INF:
                    dist[before] = dist[cell] + 1
                    queue.append(before)
        return dist


def _assignment_bound(board: _Board, boxes: tuple[int, ...], cache: dict) -> float:
    """Cheapest matching of boxes to distinct targets under push distance (DP over target subsets)."""
    found = cache.get(boxes)
    if found is not None:
        return found
    n = len(board.targets)
    if n > 10:  # the DP is 2^n; fall back to each box's nearest target
        value = float(sum(min(d[b] for d in board.distance) for b in boxes))
    else:
        best = {0: 0.0}
        for box in boxes:
            nxt: dict[int, float] = {}
            for mask, cost in best.items():
                for t in range(n):
                    if not mask & (1 << t):
                        c = cost + board.distance[t][box]
                        key = mask | (1 << t)
                        if c < nxt.get(key, _INF):
                            nxt[key] = c
            best = nxt
        value = min(best.values()) if best else _INF
    cache[boxes] = value
    return value


def _frozen(board: _Board, boxes: frozenset[int], cell: int) -> bool:
    """True when the box just pushed to ``cell`` completes a 2x2 block of walls/boxes with a box off target."""
    cols = board.cols
    for corner in (cell, cell - 1, cell - cols, cell - cols - 1):
        square = (corner, corner + 1, corner + cols, corner + cols + 1)
        if all(not board.floor[c] or c in boxes for c in square):
            if any(c in boxes and c not in board.target_set for c in square):
                return True
    return False


def _walk(board: _Board, boxes: frozenset[int], start: int) -> dict[int, int]:
    """Shortest walking distance (moves) from ``start`` to every cell reachable without pushing."""
    dist = {start: 0}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        for d in board.deltas:
            nxt = cell + d
            if board.floor[nxt] and nxt not in boxes and nxt not in dist:
                dist[nxt] = dist[cell] + 1
                queue.append(nxt)
    return dist


def _walk_path(board: _Board, boxes: frozenset[int], start: int, goal: int) -> list[str]:
    """The moves of one shortest walk from ``start`` to ``goal`` (which must be reachable)."""
    previous: dict[int, tuple[int, int]] = {start: (-1, -1)}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            break
        for i, d in enumerate(board.deltas):
            nxt = cell + d
            if board.floor[nxt] and nxt not in boxes and nxt not in previous:
                previous[nxt] = (cell, i)
                queue.append(nxt)
    path = []
    cell = goal
    while cell != start:
        cell, i = previous[cell]
        path.append(MOVES[i])
    return path[::-1]


def solve(room_fixed: np.ndarray, room_state: np.ndarray, *, max_states: int = DEFAULT_MAX_STATES,
          time_limit: float | None = None) -> SolveResult:
    """A fewest-moves plan for the level, or a verdict of "unsolvable" or "budget" (over ``max_states`` stored
    states or ``time_limit`` seconds)."""
    started = time.perf_counter()
    room_fixed, room_state = np.asarray(room_fixed), np.asarray(room_state)
    board = _Board(room_fixed, room_state)
    if board.player < 0 or len(board.boxes) != len(board.targets) or not board.boxes:
        return SolveResult("unsolvable", None, 0, time.perf_counter() - started)
    start_boxes = frozenset(board.boxes)
    if start_boxes == board.target_set:
        return SolveResult("solved", [], 1, time.perf_counter() - started)
    if any(not board.live[b] for b in start_boxes if b not in board.target_set):
        return SolveResult("unsolvable", None, 1, time.perf_counter() - started)

    bound_cache: dict = {}
    start = (board.player, start_boxes)
    best_cost = {start: 0}
    parent: dict = {start: None}
    counter = 0
    h0 = _assignment_bound(board, tuple(sorted(start_boxes)), bound_cache)
    frontier = [(h0, 0, counter, start)]
    closed: set = set()
    while frontier:
        _, neg_cost, _, state = heapq.heappop(frontier)
        cost = -neg_cost
        if state in closed:
            continue
        closed.add(state)
        player, boxes = state
        if boxes == board.target_set:
            return SolveResult("solved", _plan(board, parent, state), len(best_cost), time.perf_counter() - started)
        if len(best_cost) > max_states or (time_limit is not None and counter % 256 == 0
                                           and time.perf_counter() - started > time_limit):
            return SolveResult("budget", None, len(best_cost), time.perf_counter() - started)
        reach = _walk(board, boxes, player)
        for box in boxes:
            for i, d in enumerate(board.deltas):
                stand, dest = box - d, box + d
                steps = reach.get(stand)
                if steps is None or not board.floor[dest] or dest in boxes or not board.live[dest]:
                    continue
                new_boxes = (boxes - {box}) | {dest}
                if dest not in board.target_set and _frozen(board, new_boxes, dest):
                    continue
                new_state = (box, new_boxes)
                new_cost = cost + steps + 1
                if new_cost < best_cost.get(new_state, _INF):
                    h = _assignment_bound(board, tuple(sorted(new_boxes)), bound_cache)
                    if h == _INF:
                        continue
                    best_cost[new_state] = new_cost
                    parent[new_state] = (state, stand, i)
                    counter += 1
                    # Ties on f go to the deeper state: it is closer to a solution.
                    heapq.heappush(frontier, (new_cost + h, -new_cost, counter, new_state))
    return SolveResult("unsolvable", None, len(best_cost), time.perf_counter() - started)


def _plan(board: _Board, parent: dict, goal: tuple) -> list[str]:
    pushes = []
    state = goal
    while parent[state] is not None:
        previous, stand, i = parent[state]
        pushes.append((previous, stand, i))
        state = previous
    moves: list[str] = []
    for (player, boxes), stand, i in reversed(pushes):
        moves.extend(_walk_path(board, boxes, player, stand))
        moves.append(MOVES[i])
    return moves
