"""A flow belongs to its provider, everywhere (issue 17, finding 17).

Two demo providers on two ports, one alias, one store, two clients (two notebooks, or a
kernel before and after a restart with another provider): a device code, a code and a link
only ever reach the provider that issued them, and each notebook gets its own outcome.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from support.wait import wait_until

from chat_oauth2_nb import StateError
from chat_oauth2_nb.demo import DemoProvider, start_demo_provider
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.widgets import OAuth2Panel

Make = Callable[..., OAuth2Client]
PATIENCE = 60.0
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture
def other() -> Iterator[DemoProvider]:
    """A second provider, on another port: same alias in the notebooks, another issuer."""
    p = start_demo_provider(port=0)
    p.device_interval = 1
    yield p
    p.stop()


@pytest.fixture
def client_of(make_client: Make) -> Callable[..., OAuth2Client]:
    def make(provider: DemoProvider, **kwargs: Any) -> OAuth2Client:
        return make_client(
            config=provider.config(alias="demo"),
            client_id=provider.client_id,
            client_secret=provider.client_secret,
            **kwargs,
        )

    return make


@pytest.fixture
def panels() -> Iterator[Callable[[OAuth2Client], OAuth2Panel]]:
    made: list[OAuth2Panel] = []

    def make(client: OAuth2Client) -> OAuth2Panel:
        panel = OAuth2Panel(client, "ada")
        made.append(panel)
        return panel

    yield make
    for panel in made:
        panel.close()


def foreign_polls(provider: DemoProvider) -> int:
    """Device-code polls that reached ``provider`` with a device code it never issued."""
    known = sum(len(polls) for polls in provider.device_polls.values())
    return provider.token_requests[DEVICE_GRANT] - known


def shown_code(panel: OAuth2Panel) -> str | None:
    link = panel.state.link
    return link.user_code if link is not None else None


def test_a_panel_never_polls_another_providers_device_code(
    provider: DemoProvider,
    other: DemoProvider,
    client_of: Callable[..., OAuth2Client],
    panels: Callable[[OAuth2Client], OAuth2Panel],
) -> None:
    provider.device_interval = 1
    mine, theirs = client_of(provider, mode="device"), client_of(other, mode="device")
    # The other notebook asks its provider for a code: the newest flow of (demo, ada).
    device = theirs.start_device_authorization("ada")
    panel = panels(mine)
    # This notebook's panel shows a code of its own provider, never the other one's.
    wait_until(lambda: shown_code(panel) is not None, "a code", PATIENCE)
    assert shown_code(panel) != device.user_code
    assert shown_code(panel) in provider.device_polls
    time.sleep(3)  # a few poll intervals for both pollers
    assert foreign_polls(provider) == 0 and foreign_polls(other) == 0
    # The other notebook's flow is untouched: its person approves, it gets its own token.
    assert other.approve_device(device.user_code).status_code == 200
    data = theirs.wait_for_authorization("ada", timeout=PATIENCE)
    assert other.introspect(data.token)["active"] is True
    assert foreign_polls(provider) == 0 and foreign_polls(other) == 0


def test_a_client_does_not_poll_a_device_flow_of_another_provider(
    provider: DemoProvider, other: DemoProvider, client_of: Callable[..., OAuth2Client]
) -> None:
    mine, theirs = client_of(provider, mode="device"), client_of(other, mode="device")
    device = theirs.start_device_authorization("ada")
    flow = theirs.store.latest_flow("demo", "ada")
    assert flow is not None and flow.device is not None
    theirs.store.update_device(flow.state, interval=1, failures=0, next_poll_at=0)  # due now
    mine.poll_device_authorization(flow)
    assert provider.token_requests[DEVICE_GRANT] == 0  # nothing sent to the wrong provider
    current = theirs.store.get_flow(flow.state)
    assert current is not None and current.status == "pending"
    # Each notebook gets its own outcome: the person approves at the flow's own provider.
    other.approve_device(device.user_code)
    assert theirs.wait_for_authorization("ada", timeout=PATIENCE).token
    assert other.token_requests[DEVICE_GRANT] >= 1


def test_after_a_restart_with_another_provider_the_link_goes_to_the_new_one(
    provider: DemoProvider,
    other: DemoProvider,
    client_of: Callable[..., OAuth2Client],
    panels: Callable[[OAuth2Client], OAuth2Panel],
) -> None:
    before = client_of(provider)  # the kernel before its restart
    old_link = before.get_user_authorization_url("ada")
    old = before.store.flow_by_start_id(old_link.start_id)
    assert old is not None
    before.close()
    after = client_of(other)  # the same alias now names another provider
    with pytest.raises(StateError, match="another provider"):
        after.start_link(old)
    panel = panels(after)
    wait_until(lambda: panel.state.link is not None, "a link", PATIENCE)
    link = panel.state.link
    assert link is not None and link.start_id != old_link.start_id
    flow = after.store.flow_by_start_id(link.start_id)
    assert flow is not None and flow.provider is not None
    assert flow.provider.client_id == other.client_id
    # The Authorize link sends the browser to the new provider, with the new client id.
    start = httpx.get(link.url, timeout=PATIENCE, trust_env=False)
    assert start.status_code in (302, 303)
    assert start.headers["location"].startswith(other.issuer + "/")
    assert f"client_id={other.client_id}" in html.unescape(start.headers["location"])
    assert not re.search(re.escape(provider.client_id), start.headers["location"])


def test_a_pasted_address_of_another_providers_flow_is_refused_before_any_exchange(
    provider: DemoProvider, other: DemoProvider, client_of: Callable[..., OAuth2Client]
) -> None:
    theirs = client_of(other, mode="paste")
    link = theirs.get_user_authorization_url("ada")
    landing = other.approve(link, follow_redirect=False)
    address = str(landing.headers["location"])
    mine = client_of(provider, mode="paste")
    with pytest.raises(StateError, match="another"):
        mine.complete_authorization(address, "ada")
    flow = theirs.store.flow_by_start_id(link.start_id)
    assert flow is not None and flow.status == "pending"
    assert provider.token_requests["authorization_code"] == 0
    assert other.token_requests["authorization_code"] == 0
    # Its own notebook finishes it, at its own provider.
    assert theirs.complete_authorization(address, "ada").token
    assert other.token_requests["authorization_code"] == 1
