"""The clock check: is the provider's clock close to ours?

No request of its own: it reads the ``Date`` header of the first answer that carried one,
against the middle of our wait for it. Token expiry and id_token checks depend on both
clocks agreeing.
"""

from __future__ import annotations

import datetime as dt
from email.utils import parsedate_to_datetime

from .session import Session

__all__ = ["CLOCK_SKEW_WARN", "check_clock"]

# The provider's clock may drift this far before token expiry and id_token checks suffer.
CLOCK_SKEW_WARN = 30.0
_TITLE = "Provider's clock"


def check_clock(session: Session) -> None:
    """The ``clock`` check, from the first readable Date header (skipped without one)."""
    for _url, received, header in session.dates:
        try:
            theirs = parsedate_to_datetime(header)
        except (TypeError, ValueError):
            continue
        if theirs.tzinfo is None:
            theirs = theirs.replace(tzinfo=dt.timezone.utc)
        # Date drops the fraction of its second: the middle of that second is the guess.
        skew = theirs.timestamp() + 0.5 - received
        ahead = "ahead of" if skew > 0 else "behind"
        if abs(skew) > CLOCK_SKEW_WARN:
            session.add(
                "clock",
                _TITLE,
                "warn",
                f"The provider's Date header ({header}) is {abs(skew):.0f} s {ahead} this "
                "machine's clock; token expiry and id_token checks depend on it.",
                "Synchronise this machine's clock (NTP), or tell the provider's operator.",
            )
        else:
            session.add(
                "clock",
                _TITLE,
                "ok",
                f"The provider's clock is within {max(1.0, abs(skew)):.0f} s of this machine's.",
                "",
            )
        return
    session.add("clock", _TITLE, "skipped", "No answer carried a Date header.", "")
