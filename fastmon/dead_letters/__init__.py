"""Dead letters: every input fastmon cannot use, kept with its reason (``store``), browsable;
an operator replays (``fastmon.ingest.replay``) or discards them."""
