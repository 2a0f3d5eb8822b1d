"""``fastmon_tail``: live events followed from a terminal (``follow``), tallied per run with
rates over a window (``tally``)."""
