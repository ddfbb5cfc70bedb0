"""The pitch, the players' speeds and the ball's physics: the constants the match (:mod:`.sim`) and the built-in
AI (:mod:`.ai`) share, in Google Research Football's units (field units per frame of 0.1 s)."""

FIELD_X, FIELD_Y = 1.0, 0.42
GOAL_HALF_WIDTH = 0.044
CROSSBAR = 0.045
#: Player speeds (units per frame).
RUN, SPRINT = 0.0115, 0.0165
BALL_RUN, BALL_SPRINT, DRIBBLE = 0.0100, 0.0140, 0.0075
ACCEL = 0.3  # share of the gap to the desired velocity closed each frame
#: The ball at a carrier's feet sits this far ahead of him.
BALL_OFFSET = 0.011
#: Ball physics.
GRAVITY = 0.0018
GROUND_FRICTION = 0.965
AIR_DRAG = 0.995
BOUNCE = 0.45
#: Reaching the ball: a player controls a free ball passing within this distance, below this height.
CONTROL_RADIUS = 0.017
CONTROL_HEIGHT = 0.022
GK_RADIUS, GK_HEIGHT = 0.04, 0.05
TACKLE_RADIUS = 0.021
#: Frames between pressing a kick button and the ball leaving the foot.
KICK_DELAY = {"short": 3, "long": 4, "high": 4, "shot": 5}
#: Frames the kicker cannot touch his own kick again.
KICK_GUARD = 5
