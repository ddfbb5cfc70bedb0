"""Text math: procedural families, dataset loaders, and the single-turn env."""
