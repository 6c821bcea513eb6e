"""Quiet by default: what the package's dependencies log goes through standard logging.

The package configures no handler: a program (or ``inner-universe -v``) decides
what is shown, the standard way. diffsync logs through structlog, whose default
configuration prints every info and debug line to stdout; :func:`quiet_structlog`
routes structlog into standard logging instead, unless the program has configured
structlog itself.
"""

from __future__ import annotations

import structlog

__all__ = ["quiet_structlog"]


def quiet_structlog() -> None:
    """Send structlog's events to standard logging (shown only if logging is configured)."""
    if structlog.is_configured():
        return  # the program chose where structlog goes; leave it
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.KeyValueRenderer(key_order=["event"]),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
