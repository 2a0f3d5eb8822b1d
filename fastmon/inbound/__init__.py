"""Messages as they arrive: what a transport delivers and what ingest answers (``messages``),
and the inbound wire format, every message fastmon accepts, decoded and validated
(``schema``). Below every package that handles a message, so each can name them."""
