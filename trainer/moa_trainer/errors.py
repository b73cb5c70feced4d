"""The one exception type the CLI turns into an `error` event (message + hint)."""

from __future__ import annotations


class TrainerError(Exception):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
