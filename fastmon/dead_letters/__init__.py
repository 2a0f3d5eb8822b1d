"""Dead letters: every input fastmon cannot use, kept with its reason (``store``), browsable,
and replayed or discarded by an operator (``replay``)."""
