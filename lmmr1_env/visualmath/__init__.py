"""Visual math: procedurally drawn geometry, chart, table, counting and clock problems, image datasets, the env."""
