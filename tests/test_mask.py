"""The token mask: enough to tell two tokens apart, never a useful part of one."""

from __future__ import annotations

import secrets
import string

from chat_oauth2_nb.oauth import mask

ALPHABET = string.ascii_letters + string.digits + "-._~/+="


def revealed(masked: str) -> int:
    return len(masked.replace("…", ""))


def test_no_mask_reveals_more_than_a_sixth_of_the_secret() -> None:
    for length in range(1, 400):
        secret = "".join(secrets.choice(ALPHABET) for _ in range(length))
        masked = mask(secret)
        assert revealed(masked) <= length / 6, (length, masked)
        assert revealed(masked) <= 8


def test_a_16_character_token_shows_two_characters_and_short_ones_none() -> None:
    assert mask("0123456789abcdef") == "0…f"  # was 7 of 16 characters (44 %)
    for length in range(1, 12):
        assert mask("x" * length) == "…"
    assert mask("") == "" and mask(None) == ""


def test_the_mask_is_the_head_and_tail_of_the_secret() -> None:
    secret = "eyJhbGciOiJSUzI1NiJ9." + "a" * 40 + ".sig-x9Q"
    masked = mask(secret)
    head, tail = masked.split("…")
    assert secret.startswith(head) and secret.endswith(tail)
    assert (len(head), len(tail)) == (4, 4)


def test_two_long_tokens_almost_always_have_different_masks() -> None:
    tokens = {secrets.token_urlsafe(32) for _ in range(1000)}
    masks = {mask(token) for token in tokens}
    assert len(masks) >= 0.99 * len(tokens)
