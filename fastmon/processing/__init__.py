"""The fast-processing stage downstream, observed: slices and their results applied as they
arrive (``apply``), and what each run's processing comes to (``stats``)."""
