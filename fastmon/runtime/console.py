"""The operator's view of a long-running command when the site configures no logging."""

from __future__ import annotations

import logging


def log_to_console(verbosity: int) -> None:
    """fastmon's log on standard error: INFO, or DEBUG from verbosity 2."""
    logger = logging.getLogger("fastmon")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
