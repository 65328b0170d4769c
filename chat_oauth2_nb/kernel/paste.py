"""Paste-back: read the address the browser ended on, as the person pasted it."""

from __future__ import annotations

import dataclasses
from urllib.parse import parse_qs, urlsplit, urlunsplit

from ..errors import ConfigurationError
from ..routes import CALLBACK_TAIL

__all__ = ["Pasted", "read_pasted"]


@dataclasses.dataclass(frozen=True)
class Pasted:
    """A pasted redirect: its query parameters, and where it was sent (when a whole URL was pasted)."""

    params: dict[str, list[str]]
    #: scheme://host/path the browser ended on; None when only the query was pasted.
    at: str | None
    #: The alias in the callback path (``…/callback/<alias>``), if any.
    path_alias: str | None

    @property
    def state(self) -> str:
        """The ``state`` parameter ('' when missing)."""
        return (self.params.get("state") or [""])[0]


def read_pasted(url_or_query: str) -> Pasted:
    """Read a whole address or just its query; an empty paste says what to paste."""
    text = url_or_query.strip()
    if not text:
        raise ConfigurationError(
            "url_or_query",
            "is empty",
            "Paste the whole address from the browser's address bar.",
        )
    at: str | None = None
    path_alias: str | None = None
    if "://" in text:
        parts = urlsplit(text)
        query = parts.query
        at = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        match = CALLBACK_TAIL.search(parts.path)
        path_alias = match.group(1)[1:] if match and match.group(1) else None
    else:
        query = text.lstrip("?")
    return Pasted(parse_qs(query, keep_blank_values=True), at, path_alias)
