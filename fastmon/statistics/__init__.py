"""A run's statistics: counters kept as TF samples are written (``counters``), latency
histograms with bounded error (``histogram``), and what shift crews read (``read``)."""
