"""Environment data shipped with lmmr1 (installed as the package ``lmmr1_env.data``)."""
