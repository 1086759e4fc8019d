"""Pairing sessions: started and steered from the API, recorded whole (manual entry, imports, the demo), or
inferred from `Co-authored-by:` trailers.

- `sessions`: the sessions people record and steer, with the rules they keep (at least two people, one driver, one
  open session per person, a token acts only for its teams) and safe retries;
- `inference`: sessions inferred from co-authored commits;
- `errors`: the one family of errors they raise.
"""

from reviews.services.pairing.errors import PairingConflict, PairingError, PairingForbidden, PairingInvalid
from reviews.services.pairing.inference import (
    INFERRED_GAP,
    INFERRED_MIN_LENGTH,
    pairing_sessions_infer,
    pairing_sessions_infer_for_identity,
)
from reviews.services.pairing.sessions import (
    pairing_participant_add,
    pairing_participant_remove,
    pairing_session_driver_switch,
    pairing_session_end,
    pairing_session_record,
    pairing_session_start,
)

__all__ = [
    "INFERRED_GAP",
    "INFERRED_MIN_LENGTH",
    "PairingConflict",
    "PairingError",
    "PairingForbidden",
    "PairingInvalid",
    "pairing_participant_add",
    "pairing_participant_remove",
    "pairing_session_driver_switch",
    "pairing_session_end",
    "pairing_session_record",
    "pairing_session_start",
    "pairing_sessions_infer",
    "pairing_sessions_infer_for_identity",
]
