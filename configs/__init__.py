"""Stage configs shipped with lmmr1 (installed as the package ``lmmr1_agent.configs``)."""
