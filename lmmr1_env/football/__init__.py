"""Football: a self-contained 2-D football game on MageBench's 108 Google Research Football scenarios."""
