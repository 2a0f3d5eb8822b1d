"""The operator's view of a long-running command when the site configures no logging."""

from __future__ import annotations

import logging


def log_to_console(verbosity: int) -> None:
    """fastmon's log at INFO (DEBUG from verbosity 2), on standard error unless the site's
    logging already has a handler for it (a root console handler, say: no line twice)."""
    logger = logging.getLogger("fastmon")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
    if not logger.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
