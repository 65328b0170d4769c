"""A paste-back link never sits in a notebook's saved widget state (issue 17, finding 7).

A paste-back flow has no start page (nothing serves its redirect) and so no browser binding:
its link is the provider's URL itself, with the flow's ``state``, PKCE challenge and nonce.
Whoever reads a notebook saved with that URL could approve it with their own account and
get the person to paste the address they end on: the person's kernel would then store the
reader's token. ipywidgets saves every live widget's state (JupyterLab's "save widget
state", nbconvert's ``store_widget_state``), so the URL may reach a widget only when the
person asks to see it, for a minute, and is withdrawn once an address is pasted.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import json
import os
import re
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import pytest
from ipywidgets.embed import embed_data
from ipywidgets.widgets import widget as widget_module
from nbclient import NotebookClient
from support.scan import assert_no_secret, find_secrets
from support.wait import wait_until
from support.widgets import one

from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.notebook.client import OAuth2Client
from chat_oauth2_nb.store import PendingFlow, Store
from chat_oauth2_nb.widgets import OAuth2Panel
from chat_oauth2_nb.widgets import flow as panel_flow
from chat_oauth2_nb.widgets.state import LinkView, PanelState, link_on_show

Make = Callable[..., OAuth2Client]
PATIENCE = 60.0


def challenge(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier`` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def flow_secrets(flows: list[PendingFlow]) -> list[str]:
    """What a reader must not get of these flows: state, PKCE challenge, nonce."""
    found: list[str] = []
    for flow in flows:
        assert flow.nonce, "an openid flow carries a nonce"
        found += [flow.state, challenge(flow.code_verifier), flow.nonce]
    return found


def widget_state() -> str:
    """Everything ipywidgets could save into the .ipynb, as one text."""
    dumps = [
        json.dumps(w.get_state(), default=str) for w in list(widget_module._instances.values())
    ]
    dumps.append(json.dumps(embed_data(views=None, drop_defaults=False), default=str))
    return "\n".join(dumps)


def href(panel: OAuth2Panel) -> str:
    value = str(one(panel, "chat-oauth2-link").value)
    match = re.search(r'class="chat-oauth2-authorize[ "][^>]*href="([^"]+)"', value)
    assert match, value
    return html.unescape(match.group(1))


@pytest.fixture
def paste_panel(make_client: Make, provider: DemoProvider) -> Iterator[OAuth2Panel]:
    client = make_client(mode="paste", config=provider.config(scopes=("openid", "profile")))
    panel = OAuth2Panel(client, "ada")
    yield panel
    panel.close()


def test_a_pending_paste_link_is_in_no_saved_widget_state(
    paste_panel: OAuth2Panel, provider: DemoProvider, store: Store
) -> None:
    panel = paste_panel
    pending = store.latest_flow("demo", "ada")
    assert pending is not None and pending.endpoint == "paste" and pending.status == "pending"
    secrets = flow_secrets([pending])
    # Displayed, nothing clicked yet (a notebook run and saved as it is): nothing to take.
    assert_no_secret(widget_state(), secrets, "the saved widget state of a pending paste panel")
    show = one(panel, "chat-oauth2-show-link")
    assert show.layout.display != "none"

    # The person asks for the link and opens it: it is the flow's own provider URL.
    show.click()
    link = href(panel)
    assert find_secrets(link, secrets) and show.layout.display == "none"
    landing = provider.approve(link, follow_redirect=False).headers["location"]

    # Back from the provider: pasting the address withdraws the link at once.
    one(panel, "chat-oauth2-paste").value = landing
    assert one(panel, "chat-oauth2-link").value == ""
    assert_no_secret(widget_state(), secrets, "the saved widget state once an address is pasted")
    one(panel, "chat-oauth2-paste-finish").click()
    wait_until(lambda: panel.status == "authorized", "Authorized", PATIENCE)
    assert store.get_token("demo", "ada") is not None

    # Authorized, with a fresh standby link for "Authorize again": none of either flow shows.
    flows = [store.latest_flow("demo", "ada"), store.get_flow(pending.state)]
    assert flows[0] is not None and flows[0].state != pending.state
    assert_no_secret(
        widget_state(),
        flow_secrets([f for f in flows if f is not None]),
        "the saved widget state once authorized",
    )


def test_a_shown_paste_link_is_withdrawn_after_a_minute_or_a_new_link() -> None:
    link = LinkView(
        url="https://provider.example/auth?state=s",
        start_id="one",
        scopes=(),
        created_at=0.0,
        expires_at=600.0,
        started_by_panel=True,
        kind="paste",
    )
    state = PanelState("demo", "ada", "https://a", "https://t", (), "http://127.0.0.1:1/cb")
    state = dataclasses.replace(state, link=link)
    assert not link_on_show(state, 10.0)
    shown = panel_flow.show_link(state, 10.0)
    assert link_on_show(shown, 10.0 + panel_flow.LINK_SHOWN_FOR - 1)
    assert not link_on_show(shown, 10.0 + panel_flow.LINK_SHOWN_FOR)
    assert not link_on_show(panel_flow.paste_received(shown, "http://127.0.0.1/cb?code=x"), 11)
    renewed = dataclasses.replace(shown, link=dataclasses.replace(link, start_id="two"))
    assert not link_on_show(renewed, 11.0)
    # Start links (an opaque id only) are shown as ever.
    start = dataclasses.replace(state, link=dataclasses.replace(link, kind="redirect"))
    assert link_on_show(start, 10.0)


# -- a real kernel, saved by nbclient with its widget state ---------------------------------

_OPEN = """
from chat_oauth2_nb import create_oauth2_client
from chat_oauth2_nb.demo import start_demo_provider

provider = start_demo_provider(port=0)
client = create_oauth2_client(
    provider.config(alias="demo", scopes=("openid", "profile")),
    client_id=provider.client_id,
    client_secret=provider.client_secret,
    mode="paste",
)
panel = client.panel("ada")
panel
"""

# What the person does, played in the kernel: show the link, approve it at the provider,
# paste the address the browser ends on, press Finish.
_PERSON = """
import html, re, time

def find(root, css):
    found = [root] if css in getattr(root, "_dom_classes", ()) else []
    for child in getattr(root, "children", ()):
        found += find(child, css)
    return found

def one(root, css):
    (widget,) = find(root, css)
    return widget

one(panel, "chat-oauth2-show-link").click()
link = html.unescape(re.search(r'href="([^"]+)"', one(panel, "chat-oauth2-link").value).group(1))
landing = provider.approve(link, follow_redirect=False).headers["location"]
one(panel, "chat-oauth2-paste").value = landing
one(panel, "chat-oauth2-paste-finish").click()
deadline = time.monotonic() + 60
while panel.status != "authorized" and time.monotonic() < deadline:
    time.sleep(0.1)
print(panel.status)
"""


def _flows(path: Path) -> list[PendingFlow]:
    with sqlite3.connect(path) as db:
        states = [row[0] for row in db.execute("SELECT state FROM flows")]
    db.close()
    store = Store(path)
    flows = [store.get_flow(state) for state in states]
    store.close_all()
    return [flow for flow in flows if flow is not None]


def test_a_notebook_saved_with_its_widget_state_holds_no_paste_flow(tmp_path: Path) -> None:
    env = dict(os.environ)
    env.pop("CHAT_OAUTH2_NB_CALLBACK_URL", None)
    env.pop("JUPYTERHUB_USER", None)
    env["JUPYTER_DATA_DIR"] = str(tmp_path / "jupyter-data")
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(_OPEN), nbformat.v4.new_code_cell(_PERSON)]
    client = NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=True)
    with client.setup_kernel(env=env):
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        client.set_widgets_metadata()
    saved = tmp_path / "paste.ipynb"
    nbformat.write(nb, saved)
    text = saved.read_text(encoding="utf-8")

    assert "authorized" in json.dumps(nb.cells[1].outputs), nb.cells[1].outputs
    assert "application/vnd.jupyter.widget-state+json" in text
    assert "chat-oauth2-show-link" in text  # the panel's widgets were saved
    flows = _flows(Path(env["JUPYTER_DATA_DIR"]) / "chat_oauth2_nb" / "store.sqlite3")
    # The one the person used, and the standby link offered for "Authorize again".
    assert {f.status for f in flows} == {"done", "pending"}, flows
    assert_no_secret(text, flow_secrets(flows), "the notebook saved with its widget state")
