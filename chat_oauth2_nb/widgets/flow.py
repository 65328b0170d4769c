"""The panel's flow logic: from what the store says to the next :class:`PanelState`, no I/O.

The panel's view looks at the store (:class:`Seen`), calls :func:`advance`, does the one
thing it asks for (an :data:`Effect`: mark an expired code, adopt a flow started elsewhere,
start a standby link) and renders. The rules live here as plain functions of plain values,
so they are tested without a widget, a store or a clock:

- a token in the store replaces the shown one when its version or write time changed, and
  a new token answers whatever failed before;
- the link on offer follows its flow: done or failed flows end it (a failure becomes the
  card's error), an exchange in progress shows as waiting (until it looks stuck), an unused
  link that expired is quietly replaced, and an opened link starts the fallback clock;
- a newer pending flow for the same user that this panel's way can finish (code in a cell
  started it, or another panel or kernel) is adopted, so the link and
  ``wait_for_authorization()`` finish the same authorization;
- without a link, a redirect or paste-back panel starts a standby link; a device panel asks
  for a code only when the person says so (a code costs a request and expires soon).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TypeAlias
from urllib.parse import urlsplit

from ..kernel.flows import error_from_flow
from ..store import PendingFlow, TokenRecord
from .state import (
    ErrorInfo,
    LinkView,
    PanelState,
    ReportView,
    TokenView,
    about_changes_at,
    fallback_offers,
)

__all__ = [
    "EXCHANGE_LOOK",
    "LINK_SHOWN_FOR",
    "STUCK_EXCHANGE",
    "Adopt",
    "Effect",
    "ExpireCode",
    "NewLink",
    "Seen",
    "Step",
    "acted",
    "advance",
    "ask_to_confirm_revoke",
    "authorize_again",
    "begin",
    "cancel_revoke",
    "checked",
    "finish_queued",
    "flow_link",
    "is_new_record",
    "next_wake",
    "nothing_pasted",
    "offered",
    "paste_received",
    "pasted",
    "poll_due",
    "serves",
    "show_link",
    "switch_way",
    "tick_needs_store",
    "wants_first_code",
]

# A callback that died mid-exchange would leave its flow "exchanging" for ever.
STUCK_EXCHANGE = 60.0
# While a callback exchanges the code: how often the panel looks at the store (seconds).
EXCHANGE_LOOK = 1.0
# How long a paste-back link stays on show once asked for (state.link_on_show says why):
# time to click it, short enough that an autosave rarely finds it.
LINK_SHOWN_FOR = 60.0


@dataclasses.dataclass(frozen=True)
class Seen:
    """What one look at the store found for the panel's (alias, user)."""

    #: The stored token (None: nothing stored, another provider's token, or a dead grant).
    record: TokenRecord | None
    #: Why the stored token is not used: another provider's under this alias, or a grant the
    #: provider ended ("authorize again"); then ``record`` is None.
    mismatch: ErrorInfo | None = None
    #: The flow of the link on offer (None without a link, or when it is gone).
    current: PendingFlow | None = None
    #: The newest flow for this (alias, user), whoever started it.
    latest: PendingFlow | None = None
    #: The client's redirect URI now (setup() may have changed it).
    redirect_uri: str | None = None


@dataclasses.dataclass(frozen=True)
class ExpireCode:
    """Mark this device flow's code expired in the store (no request), then look again."""

    flow: PendingFlow


@dataclasses.dataclass(frozen=True)
class Adopt:
    """Offer this redirect or paste-back flow, started elsewhere: build its start link."""

    flow: PendingFlow


@dataclasses.dataclass(frozen=True)
class NewLink:
    """Start a standby flow for the panel's own link (a paste-back one when ``paste``)."""

    paste: bool


Effect: TypeAlias = ExpireCode | Adopt | NewLink


@dataclasses.dataclass(frozen=True)
class Step:
    """The next state, and what the view must do before it is complete (None: nothing)."""

    state: PanelState
    effect: Effect | None = None


def is_new_record(token: TokenView | None, record: TokenRecord) -> bool:
    """Whether ``record`` is not the token already shown (its version or write time differ)."""
    return token is None or (token.version, token.updated_at) != (
        record.version,
        record.updated_at,
    )


def serves(flow: PendingFlow, way: str | None, redirect_uri: str | None) -> bool:
    """Whether a panel authorizing ``way`` (with the client's ``redirect_uri``) shows ``flow``."""
    if way == "device":
        return flow.device is not None
    if way == "paste":
        return flow.endpoint == "paste"
    return flow.device is None and flow.endpoint != "paste" and flow.redirect_uri == redirect_uri


def flow_link(flow: PendingFlow, start_url: str, now: float) -> LinkView:
    """The link that offers ``flow``; ``start_url`` is its start link (unused for device flows).

    The link is the start URL (opaque id only): state and PKCE challenge never reach a
    widget trait. Who started the flow comes from the store, so every kernel agrees.
    """
    if flow.device is not None:
        # The panel shows and polls a device code whoever asked for it.
        device = flow.device
        page = device.get("verification_uri_complete") or device["verification_uri"]
        return LinkView(
            url=str(page),
            start_id=flow.start_id or "",
            scopes=flow.scopes,
            created_at=flow.created_at,
            expires_at=flow.expires_at,
            started_by_panel=True,
            kind="device",
            user_code=str(device["user_code"]),
            verification_uri=str(device["verification_uri"]),
            verification_uri_complete=device.get("verification_uri_complete"),
            next_poll_at=float(device.get("next_poll_at", 0.0)),
        )
    return LinkView(
        kind="paste" if flow.endpoint == "paste" else "redirect",
        opened_at=now if flow.binding is not None else None,
        url=str(start_url),
        start_id=flow.start_id or "",
        scopes=flow.scopes,
        created_at=flow.created_at,
        expires_at=flow.expires_at,
        started_by_panel=flow.origin == "panel",
    )


def offered(state: PanelState, link: LinkView) -> PanelState:
    """``state`` offering ``link``; a flow started by code answers the last failure."""
    return dataclasses.replace(
        state,
        link=link,
        requested_scopes=link.scopes,
        error=state.error if link.started_by_panel else None,
    )


def _token(state: PanelState, seen: Seen) -> tuple[TokenView | None, ErrorInfo | None]:
    token, error, record = state.token, state.error, seen.record
    if record is None:
        if token is not None:
            token, error = None, None
        # Another provider's token under this alias, or a dead grant: say why, offer a link.
        return token, seen.mismatch or error
    if is_new_record(token, record):
        view = TokenView.from_auth_data(
            record.data, version=record.version, updated_at=record.updated_at
        )
        return view, None  # a new token answers whatever failed before
    return token, error


def _follow(
    link: LinkView, flow: PendingFlow, error: ErrorInfo | None, now: float
) -> tuple[LinkView | None, ErrorInfo | None, Effect | None]:
    """The link on offer after its flow's news: kept, changed, or ended (with the failure)."""
    if flow.status == "done":
        return None, error, None
    if flow.status == "error":
        return None, ErrorInfo.from_exception(error_from_flow(flow)), None
    if flow.status == "exchanging":
        if now > flow.expires_at + STUCK_EXCHANGE:
            return None, error, None
        return dataclasses.replace(link, exchanging=True), error, None
    if flow.expires_at <= now:
        if flow.device is not None:
            # No request: an expired code is only marked so, for every waiter; the next
            # look finds the flow ended with its error.
            return link, error, ExpireCode(flow)
        return None, error, None  # unused and expired: quietly offer a fresh one (not a code)
    if flow.device is not None:
        polls = float(flow.device.get("next_poll_at", 0.0))
        return dataclasses.replace(link, next_poll_at=polls), error, None
    if flow.binding is not None and link.opened_at is None:
        return dataclasses.replace(link, opened_at=now), error, None  # the fallback clock starts
    return link, error, None


def _adoptable(state: PanelState, link: LinkView | None, seen: Seen, now: float) -> bool:
    latest = seen.latest
    return (
        latest is not None
        and latest.status == "pending"
        and latest.expires_at > now
        and serves(latest, state.way, seen.redirect_uri)
        and (link is None or latest.start_id != link.start_id)
    )


def _answered(state: PanelState, token: TokenView | None) -> PanelState:
    """``state`` once the shown token changed: the lines about the old one go (no stale line)."""
    if token is state.token:
        return state
    return dataclasses.replace(
        state,
        # A running action's busy words stay: its own outcome replaces them when it ends.
        outcome=state.outcome if state.busy is not None else None,
        report=None,  # the doctor described the state before
        again=False,
        confirm_revoke=False,
        paste_note=None,
        paste_error=None,
    )


def advance(state: PanelState, seen: Seen, now: float) -> Step:
    """The state after a look at the store (``now`` in epoch seconds), and what to do next."""
    token, error = _token(state, seen)
    state = _answered(state, token)
    link = state.link
    if link is not None and seen.current is None:
        link = None
    elif link is not None and seen.current is not None:
        link, error, effect = _follow(link, seen.current, error, now)
        if effect is not None:
            return Step(dataclasses.replace(state, token=token, error=error), effect)
    state = dataclasses.replace(state, redirect_uri=seen.redirect_uri, token=token, error=error)
    if _adoptable(state, link, seen, now):
        assert seen.latest is not None
        # Code in the notebook started a newer flow: offer that one, so the link and
        # wait_for_authorization() finish the same authorization.
        if seen.latest.device is None:
            return Step(state, Adopt(seen.latest))
        return Step(offered(state, flow_link(seen.latest, "", now)))
    if link is None and state.way != "device":
        # A code costs a request and expires soon: only "Get a new code" asks for one.
        return Step(dataclasses.replace(state, link=None), NewLink(paste=state.way == "paste"))
    scopes = link.scopes if link is not None else state.requested_scopes
    return Step(dataclasses.replace(state, link=link, requested_scopes=scopes))


# events ------------------------------------------------------------------------------------


def begin(state: PanelState, name: str, busy_words: str) -> PanelState | None:
    """``state`` busy with the action ``name``; None when another action runs."""
    if state.busy is not None:
        return None
    return dataclasses.replace(state, busy=name, outcome=busy_words, confirm_revoke=False)


def acted(state: PanelState, outcome: str, error: ErrorInfo | None) -> PanelState:
    """``state`` once an action ended: its outcome line, and its failure as the card's error."""
    return dataclasses.replace(state, busy=None, outcome=outcome, error=error)


def pasted(
    state: PanelState, outcome: str, error: ErrorInfo | None, used: PendingFlow | None
) -> PanelState:
    """``state`` once a pasted address was tried; ``used`` is the offered link's flow now.

    A flow the paste used up (``error=`` pasted) is the card's error, even when the store
    watcher saw it end first and moved on to a new link; a wrong address shows next to the
    field, where the person pastes again.
    """
    if state.error is None and used is not None and used.status == "error":
        state = dataclasses.replace(state, error=ErrorInfo.from_exception(error_from_flow(used)))
    ended = state.error is not None
    return dataclasses.replace(
        state,
        busy=None,
        outcome=None if error is not None else outcome,
        paste_error=None if ended else error,
        paste_note=None,
    )


def paste_received(state: PanelState, value: str) -> PanelState:
    """``state`` once an address was pasted: where it points, never its code."""
    if "://" in value:
        parts = urlsplit(value)
        where = f"{parts.scheme}://{parts.netloc}{parts.path}"
    else:
        where = "an address's query"
    # The person came back from the provider: the link has done its work, off it goes.
    return dataclasses.replace(
        state,
        paste_error=None,
        paste_note=f"Received {where} (code hidden): press Finish.",
        link_shown=None,
    )


def show_link(state: PanelState, now: float) -> PanelState:
    """``state`` showing its paste-back link for ``LINK_SHOWN_FOR`` seconds from ``now``."""
    link = state.link
    if link is None or link.kind != "paste":
        return state
    return dataclasses.replace(state, link_shown=(link.start_id, now + LINK_SHOWN_FOR))


def finish_queued(state: PanelState) -> PanelState:
    """``state`` after Finish while another action runs: it will run next, and says so."""
    return dataclasses.replace(
        state,
        paste_error=None,
        paste_note="Still working… Finish runs with your address as soon as that is done.",
    )


def nothing_pasted(state: PanelState) -> PanelState:
    """``state`` after Finish with nothing pasted: say what to do."""
    return dataclasses.replace(
        state,
        paste_note=None,
        paste_error=ErrorInfo(
            message="Nothing was pasted",
            hint="Copy the whole address from the browser's address bar into the field, "
            "then press Finish.",
        ),
    )


def switch_way(state: PanelState, way: str) -> PanelState | None:
    """``state`` finishing another way (the fallback's choice); None while an action runs."""
    if state.busy is not None:
        return None
    return dataclasses.replace(state, way=way, link=None, error=None)


def ask_to_confirm_revoke(state: PanelState) -> PanelState | None:
    """``state`` asking "Revoke the token for …?"; None when there is nothing to revoke now."""
    if state.busy is not None or state.token is None:
        return None
    return dataclasses.replace(state, confirm_revoke=True, outcome=None)


def cancel_revoke(state: PanelState) -> PanelState:
    """``state`` without the Revoke question."""
    return dataclasses.replace(state, confirm_revoke=False)


def authorize_again(state: PanelState) -> PanelState:
    """``state`` showing (or hiding again) the ways to authorize while a token works."""
    return dataclasses.replace(state, again=not state.again, confirm_revoke=False)


def checked(state: PanelState, report: ReportView | None) -> PanelState:
    """``state`` showing the doctor's ``report`` (None: the check did not run)."""
    return dataclasses.replace(state, report=report)


def tick_needs_store(state: PanelState, now: float) -> bool:
    """Whether the clock alone must re-read the store: the link expired, or may be stuck."""
    link = state.link
    return link is not None and (link.exchanging or link.expires_at <= now)


def wants_first_code(state: PanelState) -> bool:
    """Whether a new device panel with nothing to show should ask for a code at once."""
    return (
        state.config_problem is None
        and state.way == "device"
        and state.link is None
        and state.token is None
        and state.error is None
    )


def poll_due(state: PanelState, now: float) -> str | None:
    """The start id of the shown device code when its token endpoint is due a poll."""
    link = state.link
    if link is None or link.kind != "device" or now < link.next_poll_at or link.expires_at <= now:
        return None
    return link.start_id


def next_wake(state: PanelState, now: float, fallback_after: float) -> float | None:
    """The next moment (epoch s) time alone changes what the panel shows; None: never.

    The panel sets its alarm to it after every render, instead of a tick every second: a link
    or code expires, a device code is due a poll, the fallback offer is due, a shown link's
    minute is up, an exchange may be stuck, the token expires or its coarse "in about" text
    moves on. The seconds of a countdown are the browser's to draw.
    """
    moments: list[float | None] = []
    link, token = state.link, state.token
    if link is not None:
        moments.append(link.expires_at + STUCK_EXCHANGE if link.exchanging else link.expires_at)
        if link.exchanging:
            # The callback is exchanging the code: look once a second until it lands, as
            # the holder may write the token where no change is announced (a declared one).
            moments.append(now + EXCHANGE_LOOK)
        if link.kind == "device" and not link.exchanging:
            moments.append(link.next_poll_at)
        if (
            link.opened_at is not None
            and fallback_offers(
                state, dt.datetime.fromtimestamp(now, dt.timezone.utc), fallback_after
            )
            is None
        ):
            moments.append(link.opened_at + fallback_after)
        if state.link_shown is not None:
            moments.append(state.link_shown[1])
    if token is not None and token.expires_at is not None:
        at = token.expires_at.timestamp()
        moments.append(about_changes_at(at, now))
    # A moment already past is the caller's to act on now (a poll due, a link to replace).
    future = [m for m in moments if m is not None and m > now]
    return min(future) if future else None
