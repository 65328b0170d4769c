"""Reading a provider's answer: JSON or a form (GitHub's default), media type, seconds.

Private to :mod:`chat_oauth2_nb.oauth`: the parsing its redaction, answers and device rooms share.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["content_kind", "load_answer", "load_form", "load_json", "media_type", "seconds"]


def media_type(headers: Mapping[str, str]) -> str:
    """The answer's media type without parameters, lowercase ('' when none was sent)."""
    return (headers.get("content-type") or "").split(";")[0].strip().lower()


def load_json(content: bytes) -> Any:
    """The parsed JSON of ``content``, or None when it is not JSON (or nests absurdly deep)."""
    try:
        return json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def load_form(content: bytes, content_type: str) -> list[tuple[str, str]] | None:
    """Form-encoded pairs when the answer says it is a form, or plainly is a token form."""
    try:
        text = content.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    if content_type == "application/x-www-form-urlencoded":
        return pairs
    # GitHub answers form-encoded unless asked for JSON, and some proxies drop the type.
    names = {name for name, _ in pairs}
    return pairs if names & {"access_token", "error", "refresh_token"} else None


def load_answer(headers: Mapping[str, str], content: bytes) -> dict[str, Any] | None:
    """A token or error answer as a dict: JSON, or form-encoded (GitHub's default)."""
    data = load_json(content)
    if isinstance(data, dict):
        return data
    if data is None:
        pairs = load_form(content, media_type(headers))
        if pairs is not None:
            return dict(pairs)
    return None


def content_kind(headers: Mapping[str, str], content: bytes) -> str:
    """How an answer's body is described in an error: its media type, or why there is none."""
    return media_type(headers) or ("empty body" if not content else "no content type")


def seconds(raw: object) -> float | None:
    """A finite number of seconds from a JSON number or numeric string, else None."""
    # Some providers (Azure AD v1, older Facebook) send numbers as strings ("3599").
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            return None
    else:
        return None
    return value if math.isfinite(value) else None
