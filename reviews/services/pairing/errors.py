"""The one family of errors pairing services raise (the API maps each to its status)."""

from __future__ import annotations


class PairingError(Exception):
    """A pairing request refused; nothing was written. `field` names the input at fault, when one is."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class PairingInvalid(PairingError):
    """Bad input (400)."""


class PairingConflict(PairingError):
    """The session's state does not allow it: it has ended, or a client id is already taken (409)."""


class PairingForbidden(PairingError):
    """The caller does not act for every participant's team (403)."""
