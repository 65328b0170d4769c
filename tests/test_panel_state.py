"""The panel's flow logic and its HTML, as pure functions of plain values: no widget, no store.

``advance(state, seen, now)`` is what the panel runs on every look at the store; the view
only performs the effect it returns. Each rule of ``chat_oauth2_nb.widgets.flow`` is stated
here with made-up flows and records, at a fixed ``NOW``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

import pytest

from chat_oauth2_nb.errors import AuthorizationDeniedError, ProviderMismatchError
from chat_oauth2_nb.oauth import AuthData, mask
from chat_oauth2_nb.store import FlowError, PendingFlow, TokenRecord
from chat_oauth2_nb.widgets import flow, render
from chat_oauth2_nb.widgets.flow import Adopt, ExpireCode, NewLink, Seen, advance
from chat_oauth2_nb.widgets.state import (
    ErrorInfo,
    LinkView,
    PanelState,
    ReportRow,
    ReportView,
    Status,
    about_changes_at,
    about_text,
    at_text,
    next_step,
    status_line,
)

NOW = 1_700_000_000.0
REDIRECT = "http://127.0.0.1:4711/chat-oauth2/callback/demo"
DENIED = FlowError.of(
    AuthorizationDeniedError("The person denied it", error="access_denied"), "denied"
)


def a_flow(start_id: str = "s1", **changes: Any) -> PendingFlow:
    """A pending loopback flow a panel started ten seconds ago, valid for ten minutes."""
    values: dict[str, Any] = {
        "state": f"state-of-{start_id}",
        "alias": "demo",
        "user": "ada",
        "code_verifier": "v" * 43,
        "redirect_uri": REDIRECT,
        "scopes": ("openid", "profile"),
        "created_at": NOW - 10,
        "expires_at": NOW + 590,
        "start_id": start_id,
        "origin": "panel",
        "endpoint": "loopback",
    }
    values.update(changes)
    return PendingFlow(**values)


def a_device_flow(start_id: str = "d1", **changes: Any) -> PendingFlow:
    device = {
        "user_code": "WDJB-MJHT",
        "verification_uri": "https://p/device",
        "verification_uri_complete": "https://p/device?user_code=WDJB-MJHT",
        "interval": 5,
        "next_poll_at": NOW + 5,
    }
    values: dict[str, Any] = {"redirect_uri": "", "endpoint": "device", "origin": "device"}
    return a_flow(start_id, device=device, **{**values, **changes})


def link_of(pending: PendingFlow) -> LinkView:
    return flow.flow_link(
        pending, f"http://127.0.0.1:4711/chat-oauth2/start/{pending.start_id}", NOW
    )


def a_state(**changes: Any) -> PanelState:
    base = PanelState(
        alias="demo",
        user="ada",
        auth_uri="https://p/authorize",
        token_uri="https://p/token",
        requested_scopes=("openid",),
        redirect_uri=REDIRECT,
        way="loopback",
    )
    return dataclasses.replace(base, **changes)


def a_record(version: int = 1, updated_at: float = NOW - 5) -> TokenRecord:
    data = AuthData(
        token=f"access-token-{version}-0123456789abcdef",
        refresh_token="refresh-token-0123456789abcdef",
        expires_at=dt.datetime.fromtimestamp(NOW + 3600, dt.timezone.utc),
        obtained_at=dt.datetime.fromtimestamp(NOW - 5, dt.timezone.utc),
    )
    return TokenRecord("demo", "ada", data, version, updated_at)


def seen(**kwargs: Any) -> Seen:
    return Seen(**{"record": None, "redirect_uri": REDIRECT, **kwargs})


# -- the token -------------------------------------------------------------------------------


def test_a_new_token_is_shown_as_a_mask_and_answers_the_last_failure() -> None:
    pending = a_flow()
    state = a_state(link=link_of(pending), error=ErrorInfo("The refresh failed"))
    record = a_record()
    step = advance(state, seen(record=record, current=pending, latest=pending), NOW)
    assert step.effect is None
    token = step.state.token
    assert token is not None and token.token_mask == mask(record.data.token)
    assert step.state.error is None
    assert record.data.token not in repr(step.state)
    # The same record again changes nothing, and keeps a later failure.
    failed = dataclasses.replace(step.state, error=ErrorInfo("The refresh failed"))
    again = advance(failed, seen(record=record, current=pending, latest=pending), NOW)
    assert again.state.token is token and again.state.error == ErrorInfo("The refresh failed")
    assert not flow.is_new_record(token, record)
    assert flow.is_new_record(token, a_record(version=2))


def test_a_removed_token_leaves_nothing_shown() -> None:
    pending = a_flow()
    shown = advance(a_state(link=link_of(pending)), seen(record=a_record(), current=pending), NOW)
    gone = advance(
        dataclasses.replace(shown.state, error=ErrorInfo("x")), seen(current=pending), NOW
    )
    assert gone.state.token is None and gone.state.error is None
    assert gone.state.link == link_of(pending)


def test_another_providers_token_is_an_error_and_a_link_is_still_offered() -> None:
    mismatch = ErrorInfo.from_exception(ProviderMismatchError("belongs to another provider"))
    step = advance(a_state(), seen(mismatch=mismatch), NOW)
    assert step.state.error == mismatch and step.state.status(_at(NOW)) is Status.ERROR
    assert step.effect == NewLink(paste=False)


# -- the link's flow -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("way", "effect"),
    [("loopback", NewLink(paste=False)), ("paste", NewLink(paste=True)), ("device", None)],
)
def test_a_finished_or_vanished_flow_ends_the_link(way: str, effect: NewLink | None) -> None:
    pending = a_flow(endpoint="paste" if way == "paste" else "loopback")
    state = a_state(link=link_of(pending), way=way)
    for current in (dataclasses.replace(pending, status="done"), None):
        step = advance(state, seen(current=current), NOW)
        # A code costs a request and expires soon: a device panel waits for a click.
        assert step.state.link is None and step.effect == effect


def test_a_failed_flow_is_the_cards_error() -> None:
    pending = a_flow()
    failed = dataclasses.replace(pending, status="error", error=DENIED)
    step = advance(a_state(link=link_of(pending)), seen(current=failed, latest=failed), NOW)
    error = step.state.error
    assert error is not None and error.error == "access_denied" and error.hint
    assert step.state.link is None and step.effect == NewLink(paste=False)


def test_an_exchange_shows_as_waiting_until_it_looks_stuck() -> None:
    pending = a_flow()
    exchanging = dataclasses.replace(pending, status="exchanging")
    step = advance(a_state(link=link_of(pending)), seen(current=exchanging), NOW)
    assert step.state.link is not None and step.state.link.exchanging
    assert step.state.status(_at(NOW)) is Status.WAITING
    assert flow.tick_needs_store(step.state, NOW)  # no store change shows a stuck exchange
    late = pending.expires_at + flow.STUCK_EXCHANGE + 1
    stuck = advance(step.state, seen(current=exchanging), late)
    assert stuck.state.link is None and stuck.effect == NewLink(paste=False)


def test_an_expired_unused_link_is_quietly_replaced() -> None:
    pending = a_flow(expires_at=NOW - 1)
    state = a_state(link=link_of(pending))
    assert flow.tick_needs_store(state, NOW)
    step = advance(state, seen(current=pending, latest=pending), NOW)
    assert step.state.link is None and step.state.error is None
    assert step.effect == NewLink(paste=False)


def test_an_expired_device_code_is_marked_then_its_error_shown() -> None:
    pending = a_device_flow(expires_at=NOW - 1)
    state = a_state(way="device", link=link_of(pending))
    step = advance(state, seen(current=pending, latest=pending), NOW)
    # The view marks it (no request), then looks again: the link stays for that look.
    assert step.effect == ExpireCode(pending) and step.state.link == state.link
    ended = dataclasses.replace(pending, status="error", error=DENIED)
    after = advance(step.state, seen(current=ended, latest=ended), NOW)
    assert after.effect is None and after.state.link is None
    assert after.state.error is not None and after.state.error.error == "access_denied"
    assert not flow.wants_first_code(after.state)  # a new code only on "Get a new code"


def test_an_opened_link_starts_the_fallback_clock_once() -> None:
    pending = a_flow()
    opened = dataclasses.replace(pending, binding="sha256-of-the-cookie")
    first = advance(a_state(link=link_of(pending)), seen(current=opened), NOW)
    assert first.state.link is not None and first.state.link.opened_at == NOW
    later = advance(first.state, seen(current=opened), NOW + 30)
    assert later.state.link is not None and later.state.link.opened_at == NOW


def test_a_device_link_follows_the_stores_poll_schedule() -> None:
    pending = a_device_flow()
    state = a_state(way="device", link=link_of(pending))
    assert state.link is not None and state.link.next_poll_at == NOW + 5
    assert flow.poll_due(state, NOW) is None
    assert flow.poll_due(state, NOW + 5) == "d1"
    polled = dataclasses.replace(
        pending, device={**(pending.device or {}), "next_poll_at": NOW + 20}
    )
    step = advance(state, seen(current=polled, latest=polled), NOW + 6)
    assert step.effect is None and step.state.link is not None
    assert flow.poll_due(step.state, NOW + 6) is None
    assert flow.poll_due(step.state, NOW + 20) == "d1"
    assert flow.poll_due(a_state(link=link_of(a_flow())), NOW + 20) is None  # not a code


# -- flows started elsewhere -----------------------------------------------------------------


def test_a_newer_flow_from_code_is_adopted_and_answers_the_last_failure() -> None:
    own = a_flow("s1")
    from_code = a_flow("s2", origin="code", created_at=NOW - 1)
    state = a_state(link=link_of(own), error=ErrorInfo("The refresh failed"))
    step = advance(state, seen(current=own, latest=from_code), NOW)
    assert step.effect == Adopt(from_code)
    # What the view does with it: build the start link, then offer it.
    offered = flow.offered(step.state, link_of(from_code))
    assert offered.link is not None and not offered.link.started_by_panel
    assert offered.error is None and offered.requested_scopes == from_code.scopes
    assert offered.status(_at(NOW)) is Status.WAITING
    # Another panel's standby flow is shown too, but it is nobody's news.
    theirs = flow.offered(step.state, link_of(a_flow("s3")))
    assert theirs.error == ErrorInfo("The refresh failed")


@pytest.mark.parametrize(
    ("pending", "way", "served"),
    [
        (a_flow(), "loopback", True),
        (a_flow(redirect_uri="http://127.0.0.1:9/chat-oauth2/callback/demo"), "loopback", False),
        (a_flow(endpoint="paste"), "loopback", False),
        (a_flow(endpoint="paste"), "paste", True),
        (a_device_flow(), "loopback", False),
        (a_device_flow(), "device", True),
        (a_flow(), "device", False),
    ],
)
def test_a_panel_adopts_only_flows_its_way_finishes(
    pending: PendingFlow, way: str, served: bool
) -> None:
    assert flow.serves(pending, way, REDIRECT) is served
    step = advance(a_state(way=way), seen(latest=pending), NOW)
    adopted = step.effect == Adopt(pending) or (
        step.state.link is not None and step.state.link.start_id == pending.start_id
    )
    assert adopted is served


def test_a_device_code_is_adopted_without_asking_the_view() -> None:
    pending = a_device_flow()
    step = advance(a_state(way="device", error=ErrorInfo("x")), seen(latest=pending), NOW)
    link = step.state.link
    assert step.effect is None and link is not None and link.kind == "device"
    assert link.user_code == "WDJB-MJHT" and link.url == "https://p/device?user_code=WDJB-MJHT"
    assert link.started_by_panel and step.state.error == ErrorInfo("x")


def test_expired_finished_and_same_flows_are_not_adopted() -> None:
    own = a_flow("s1")
    state = a_state(link=link_of(own))
    for latest in (
        own,
        a_flow("s2", expires_at=NOW - 1),
        a_flow("s2", status="done"),
    ):
        step = advance(state, seen(current=own, latest=latest), NOW)
        assert step.effect is None and step.state.link == state.link


# -- events ----------------------------------------------------------------------------------


def test_a_pasted_denial_is_the_cards_error_even_when_the_watcher_saw_it_first() -> None:
    denied = ErrorInfo.from_exception(DENIED.to_exception())
    used = dataclasses.replace(a_flow(endpoint="paste"), status="error", error=DENIED)
    # The watcher already ended the link and offered a new one: the sync finds no error.
    moved_on = a_state(way="paste", link=link_of(a_flow("s2", endpoint="paste")), busy="paste")
    done = flow.pasted(moved_on, "Authorized from the pasted address.", denied, used)
    assert done.error is not None and done.error.error == "access_denied"
    assert done.paste_error is None and done.outcome is None and done.busy is None


def test_a_wrong_address_stays_next_to_the_field() -> None:
    wrong = ErrorInfo("This address belongs to no pending authorization")
    state = a_state(way="paste", busy="paste", paste_note="Received … press Finish.")
    done = flow.pasted(state, "Authorized from the pasted address.", wrong, a_flow())
    assert done.error is None and done.paste_error == wrong and done.paste_note is None
    good = flow.pasted(state, "Authorized from the pasted address.", None, None)
    assert good.outcome == "Authorized from the pasted address." and good.paste_error is None


def test_what_a_paste_note_says() -> None:
    address = "http://127.0.0.1:53682/chat-oauth2/callback/demo?code=SECRET-CODE&state=x"
    note = flow.paste_received(a_state(), address).paste_note or ""
    assert "http://127.0.0.1:53682/chat-oauth2/callback/demo" in note and "SECRET" not in note
    assert "an address's query" in (flow.paste_received(a_state(), "code=x").paste_note or "")
    empty = flow.nothing_pasted(a_state())
    assert empty.paste_error is not None and empty.paste_error.message == "Nothing was pasted"


def test_one_action_at_a_time() -> None:
    busy = flow.begin(a_state(confirm_revoke=True), "refresh", "Refreshing…")
    assert busy is not None and busy.busy == "refresh" and busy.outcome == "Refreshing…"
    assert not busy.confirm_revoke and not busy.ready
    assert flow.begin(busy, "revoke", "Revoking…") is None
    assert flow.switch_way(busy, "device") is None
    done = flow.acted(busy, "The refresh failed", ErrorInfo("x"))
    assert done.busy is None and done.ready and done.error == ErrorInfo("x")
    switched = flow.switch_way(dataclasses.replace(done, link=link_of(a_flow())), "paste")
    assert switched is not None and switched.way == "paste"
    assert switched.link is None and switched.error is None


def test_revoke_asks_first_and_cancel_takes_the_question_back() -> None:
    token = flow.advance(a_state(), Seen(a_record(), redirect_uri=REDIRECT), NOW).state.token
    assert flow.ask_to_confirm_revoke(a_state()) is None  # nothing stored: nothing to ask
    for declared in (False, True):
        authorized = a_state(token=token, declared=declared, outcome="Refreshed at 12:00")
        asking = flow.ask_to_confirm_revoke(authorized)
        assert asking is not None and asking.confirm_revoke and asking.outcome is None
        question = render.confirm_revoke_html(asking)
        assert "Revoke the token for <code>ada</code> at <code>demo</code>?" in question
        assert not flow.cancel_revoke(asking).confirm_revoke
        busy = flow.begin(asking, "revoke", "Revoking…")
        assert busy is not None and not busy.confirm_revoke
        assert flow.ask_to_confirm_revoke(busy) is None  # one action at a time


def test_a_device_panel_asks_for_its_first_code_only_with_nothing_to_show() -> None:
    device = a_state(way="device", redirect_uri=None)
    assert flow.wants_first_code(device)
    assert not flow.wants_first_code(a_state())
    assert not flow.wants_first_code(dataclasses.replace(device, config_problem="no"))
    assert not flow.wants_first_code(dataclasses.replace(device, error=ErrorInfo("x")))
    assert not flow.wants_first_code(dataclasses.replace(device, link=link_of(a_device_flow())))


# -- what the panel shows --------------------------------------------------------------------


def test_links_are_static_html_without_the_state() -> None:
    link = link_of(a_flow())
    offered = a_state(link=link)
    html = render.link_html(offered, Status.NOT_AUTHORIZED)
    assert 'class="chat-oauth2-authorize ' in html and link.url in html and "state-of" not in html
    assert 'data-primary="true"' in html and "mod-primary" in html
    secondary = render.link_html(offered, Status.AUTHORIZED, primary=False)
    assert ">Authorize again</a>" in secondary and "mod-primary" not in secondary
    assert render.link_html(offered, Status.NOT_CONFIGURED) == ""
    device = a_state(link=link_of(a_device_flow()))
    assert render.link_html(device, Status.NOT_AUTHORIZED) == ""
    assert device.link is not None and "WDJB-MJHT" in render.user_code_html(device.link)
    assert "(the link fills the code in)" in render.verify_html(device.link)
    assert ">Open the verification page</a>" in render.verify_html(device.link)
    # The host the link opens is named, in ASCII, next to it (issue 17, finding 12).
    assert "on <b>p</b>" in render.verify_html(device.link)
    look_alike = dataclasses.replace(device.link, url="https://xn--pypl-53d.com/device")
    assert "xn--pypl-53d.com" in render.verify_html(look_alike)


def test_the_fallback_offer_names_whose_fix_it_is() -> None:
    own = render.fallback_html(a_state(), ("paste",))
    assert f"register exactly <code>{REDIRECT}</code>" in own and "another way" in own
    declared = render.fallback_html(a_state(declared=True), ())
    assert "tell your administrator" in declared and "another way" not in declared


def test_small_words_of_the_view() -> None:
    assert render.sealed_words(True, "hub") == "encrypted (hub key)"
    assert render.sealed_words(True, "env") == "encrypted (AES-GCM)"
    assert render.sealed_words(False, None) == "not encrypted"
    assert render.sealed_words(None, None) == "cannot be opened"
    assert [render.progress_style(f) for f in (0.9, 0.2, 0.05)] == ["success", "warning", "danger"]
    assert render.shown(True) is None and render.shown(False) == "none"
    assert render.text('<b a="1">') == "&lt;b a=&quot;1&quot;&gt;"


def _at(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc)


# -- a panel that guides (issue 21, item 2) ---------------------------------------------------


def _token_state(**changes: Any) -> PanelState:
    """Authorized: a token stored, the standby link on offer."""
    pending = a_flow()
    shown = advance(a_state(link=link_of(pending)), seen(record=a_record(), current=pending), NOW)
    return dataclasses.replace(shown.state, **changes)


def test_every_state_offers_at_most_one_next_step() -> None:
    now = _at(NOW)
    redirect = a_state(link=link_of(a_flow()))
    opened = a_state(link=dataclasses.replace(link_of(a_flow()), opened_at=NOW - 3))
    paste_link = dataclasses.replace(link_of(a_flow(endpoint="paste")), kind="paste")
    pasting = a_state(way="paste", link=paste_link)
    shown_paste = flow.show_link(pasting, NOW)
    device = a_state(way="device", link=link_of(a_device_flow()))
    authorized_token = _token_state().token
    assert authorized_token is not None
    expired_token = dataclasses.replace(
        authorized_token,
        expires_at=dt.datetime.fromtimestamp(NOW - 1, dt.timezone.utc),
    )
    cases: dict[str, tuple[PanelState, str | None]] = {
        "not authorized": (redirect, "authorize"),
        "waiting for the other tab": (opened, None),
        "authorized": (_token_state(), None),
        "authorized, asked to authorize again": (_token_state(again=True), "authorize"),
        "expired, refreshable": (_token_state(token=expired_token), "refresh"),
        "paste: link hidden": (pasting, "show_link"),
        "paste: link shown": (shown_paste, "authorize"),
        "paste: address received": (flow.paste_received(pasting, "http://x/?code=c"), "finish"),
        "device: code shown": (device, "verify"),
        "device: no code": (a_state(way="device"), "new_code"),
        "busy": (dataclasses.replace(redirect, busy="check"), None),
        "not configured": (dataclasses.replace(redirect, config_problem="no"), None),
        "error": (dataclasses.replace(redirect, error=ErrorInfo("x")), "authorize"),
    }
    for name, (state, step) in cases.items():
        assert next_step(state, now) == step, name
    assert opened.status(now) is Status.WAITING
    assert "Waiting for you to approve in the other tab" in render.status_html(
        opened, Status.WAITING, now
    )
    assert 'class="chat-oauth2-spinner"' in render.status_html(opened, Status.WAITING, now)


def test_the_status_line_holds_no_ticking_countdown() -> None:
    now = _at(NOW)
    for state in (
        a_state(link=link_of(a_flow())),
        a_state(way="device", link=link_of(a_device_flow())),
        _token_state(),
        a_state(link=dataclasses.replace(link_of(a_flow()), started_by_panel=False)),
    ):
        line = status_line(state, now)
        assert not re.search(r"\d:\d\d", line.replace(at_text(NOW + 3600), "")), line
    # The device code's expiry is said once, beside its code, not in the status line too.
    assert "expire" not in status_line(a_state(way="device", link=link_of(a_device_flow())), now)


def test_coarse_time_left_changes_at_most_once_a_minute() -> None:
    assert about_text(NOW + 3599, NOW) == "in about 60 min"
    assert about_text(NOW + 61, NOW) == "in about 2 min"
    assert about_text(NOW + 30, NOW) == "in less than a minute"
    assert about_text(NOW + 5 * 3600, NOW) == "in about 5 h"
    assert about_text(NOW - 1, NOW) == "now"
    change = about_changes_at(NOW + 3599, NOW)
    assert change == NOW + 3599 - 59 * 60  # 59 s from now: "in about 59 min"
    assert change is not None and about_text(NOW + 3599, change) == "in about 59 min"
    assert about_text(NOW + 3599, change - 0.5) == "in about 60 min"
    assert about_changes_at(NOW + 30, NOW) == NOW + 30
    assert about_changes_at(NOW - 1, NOW) is None


def test_the_panel_wakes_only_when_time_changes_what_it_shows() -> None:
    # Authorized, an hour left: the next minute of "in about", not the next second.
    wake = flow.next_wake(_token_state(link=None), NOW, 60.0)
    assert wake is not None and 30 < wake - NOW <= 60
    # An unused link: when it expires (then a new one is offered).
    link = link_of(a_flow())
    assert flow.next_wake(a_state(link=link), NOW, 60.0) == link.expires_at
    # An opened link: when the fallback offer is due.
    opened = a_state(link=dataclasses.replace(link, opened_at=NOW - 10))
    assert flow.next_wake(opened, NOW, 60.0) == NOW + 50
    # A code being exchanged: a look each second until the token lands (or it looks stuck).
    exchanging = a_state(link=dataclasses.replace(link, exchanging=True))
    assert flow.next_wake(exchanging, NOW, 60.0) == NOW + flow.EXCHANGE_LOOK
    # A device code: its next poll.
    assert flow.next_wake(a_state(link=link_of(a_device_flow())), NOW, 60.0) == NOW + 5
    # Nothing that time changes: never.
    assert flow.next_wake(a_state(), NOW, 60.0) is None


def test_a_new_token_clears_the_lines_about_the_old_state() -> None:
    pending = a_flow()
    report = ReportView.of("x", [ReportRow("a", "ok", "fine", "")])
    before = a_state(
        link=link_of(pending),
        outcome="Revoked at the provider and deleted here.",
        report=report,
        paste_note="Received …",
        confirm_revoke=True,
    )
    after = advance(before, seen(record=a_record(), current=pending, latest=pending), NOW).state
    assert after.token is not None
    assert after.outcome is None and after.report is None and after.paste_note is None
    assert not after.confirm_revoke and not after.again
    # And a token that went away (revoked elsewhere) takes its report with it.
    checked = flow.checked(after, report)
    gone = advance(checked, seen(current=pending, latest=pending), NOW).state
    assert gone.token is None and gone.report is None
    # A running action keeps its busy words until its own outcome replaces them.
    busy = flow.begin(before, "refresh", "Refreshing…")
    assert busy is not None
    during = advance(busy, seen(record=a_record(), current=pending), NOW).state
    assert during.outcome == "Refreshing…"


def test_the_doctors_report_puts_failures_first_and_folds_what_passed() -> None:
    rows = [
        ReportRow("authUri answers", "ok", "fine", ""),
        ReportRow("Client authentication", "skipped", "no secret", ""),
        ReportRow("Credentials", "fail", "invalid_client", "Check the <secret> source"),
        ReportRow("Clock", "warn", "2 s off", "Sync the clock"),
    ]
    report = ReportView.of("'demo': 1 fail, 1 warn, 1 ok, 1 skipped", rows)
    assert [r.verdict for r in report.rows] == ["fail", "warn", "ok", "skipped"]
    page = render.report_html(report)
    assert page.index("Credentials") < page.index("Clock") < page.index("authUri answers")
    urgent, folded = page.split("<details>", 1)
    assert "Credentials" in urgent and "authUri answers" in folded
    assert "2 other checks passed or skipped" in folded
    assert "Check the &lt;secret&gt; source" in page  # escaped, and wrapped by the card's CSS
    assert "table-layout: fixed" in render.PANEL_CSS
    assert render.report_html(None) == ""
