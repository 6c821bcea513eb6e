"""What the chat feature raises: all of it under :class:`ChatError`.

InnerUniverseError
└── ChatError
    ├── ChatInputError      a message or argument refused before anything was sent
    ├── UnknownStreamError  no stream for that message
    ├── CallRefusedError    the module refused to start a model call (budget, cooldown)
    └── ProvidersFailedError  every provider that could answer failed
"""

from __future__ import annotations

from ...errors import InnerUniverseError

__all__ = [
    "CallRefusedError",
    "ChatError",
    "ChatInputError",
    "ProvidersFailedError",
    "UnknownStreamError",
]


class ChatError(InnerUniverseError):
    """Base of the chat feature's errors."""


class ChatInputError(ChatError, ValueError):
    """Bad input to the chat API (an empty or oversized message, say); nothing was sent."""


class UnknownStreamError(ChatError):
    """The message has no stream (it does not exist, or was not streamed)."""

    def __init__(self, message_id: int) -> None:
        super().__init__(f"message {message_id} has no stream")
        self.message_id = message_id


class CallRefusedError(ChatError):
    """The module refused to start a model call; ``reason`` is its own sentence."""

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(f"model call on {provider!r} refused: {reason}")
        self.provider = provider
        self.reason = reason


class ProvidersFailedError(ChatError):
    """No provider could finish the reply; ``errors`` maps each one to why it could not."""

    def __init__(self, errors: dict[str, str], message_id: int | None) -> None:
        tried = "; ".join(f"{name}: {error}" for name, error in errors.items()) or "none"
        where = "" if message_id is None else f" for message {message_id}"
        super().__init__(f"no provider could answer{where} ({tried})")
        self.errors = errors
        self.message_id = message_id
        """The failed stream's message (None: no stream was started)."""
