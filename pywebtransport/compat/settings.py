"""Configuration fields that act outside the transport: logging level and debug mode."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import ClientConfig, ServerConfig

__all__ = ["apply_logging"]


def apply_logging(config: ClientConfig | ServerConfig) -> None:
    """Set the ``pywebtransport`` logger's level from `config`.

    ``debug=True`` means ``DEBUG``; otherwise `log_level` applies. Only the library's own
    logger is changed (handlers stay the application's business); the most recently
    created client or server wins.
    """
    level = "DEBUG" if config.debug else config.log_level
    logging.getLogger("pywebtransport").setLevel(level)
