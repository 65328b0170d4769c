"""The callback's code and state stay out of a Jupyter server's debug log through the login page.

A browser that is not logged in (an expired session, a guest) reaches the callback; Jupyter
sends it to the login page with ``next=`` the page to come back to, and logs that address
at debug level. The attack test runs a real ``jupyter server --debug`` and scans its whole
log for the code and state in every encoding, while the person, once logged in, still
finishes the flow.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from support.scan import assert_no_secret
from support.server import JupyterServer

from chat_oauth2_nb import create_oauth2_client
from chat_oauth2_nb.demo import DemoProvider


@pytest.fixture
def server(tmp_path: Path) -> JupyterServer:
    # Debug logging, and a person who keeps their name across logins (support/identity.py).
    tests = str(Path(__file__).resolve().parent)
    path = os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH", "")) if p)
    jupyter = JupyterServer(
        tmp_path / "jupyter",
        args=["--debug", "--ServerApp.identity_provider_class=support.identity.OnePerson"],
        env={"PYTHONPATH": path},
    )
    jupyter.start()
    yield jupyter  # type: ignore[misc]
    jupyter.stop()


def _login(http: httpx.Client, server: JupyterServer, login_url: str) -> httpx.Response:
    """Log in on Jupyter's own login page with the server's token, as a person would."""
    form = http.get(login_url)
    assert form.status_code == 200, form.text[:300]
    xsrf = http.cookies.get("_xsrf") or ""
    match = re.search(r'name="_xsrf" value="([^"]+)"', form.text)
    answer = http.post(
        login_url,
        data={"password": server.token, "_xsrf": match.group(1) if match else xsrf},
        follow_redirects=False,
    )
    assert answer.status_code == 302, answer.text[:300]
    return answer


def test_code_and_state_stay_out_of_the_debug_log_through_the_login_redirect(
    server: JupyterServer, provider: DemoProvider
) -> None:
    client = create_oauth2_client(
        provider.config(alias="demo"),
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        redirect_uri=server.callback_url + "/demo",
        store=server.store(),
    )
    try:
        client.setup()
        link = client.get_user_authorization_url("ada")
        with httpx.Client(trust_env=False, timeout=30) as browser:
            # The person's browser opens the start link (logged in), approves at the provider…
            start = browser.get(link, headers=server.headers, follow_redirects=False)
            assert start.status_code == 302, start.text[:300]
            redirect = provider.approve(start.headers["location"], follow_redirect=False)
            back = redirect.headers["location"]
            query = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
            # …and comes back without its Jupyter login (expired): to the login page.
            for cookie in list(browser.cookies.jar):
                if not cookie.name.startswith("chat_oauth2_"):
                    browser.cookies.jar.clear(cookie.domain, cookie.path, cookie.name)
            bounced = browser.get(back, follow_redirects=False)
            assert bounced.status_code == 302, bounced.text[:300]
            login_url = urljoin(back, bounced.headers["location"])
            assert "/login?next=" in login_url
            assert_no_secret(login_url, [query["code"], query["state"]], "the login URL")
            # Once logged in, Jupyter sends it back to the callback, which finishes the flow.
            again = _login(browser, server, login_url)
            page = browser.get(urljoin(login_url, again.headers["location"]))
            assert page.status_code == 200 and "Authorized" in page.text, page.text[-700:]
        assert client.wait_for_authorization("ada", timeout=60).token
    finally:
        client.close()
    server.stop()  # every line written
    log = server.log_text()
    # Debug logging was on, and logged the login page's address.
    assert "[D " in log and "/login?next=" in log
    assert_no_secret(log, [query["code"], query["state"]], "the Jupyter server's debug log")


def test_a_sealed_query_opens_only_at_its_path_unaltered() -> None:
    from chat_oauth2_nb.server.handlers import open_query, seal_query

    sealed = seal_query("/chat-oauth2/callback/demo", "code=c&state=s")
    assert open_query("/chat-oauth2/callback/demo", sealed) == "code=c&state=s"
    assert open_query("/chat-oauth2/callback/other", sealed) is None
    assert open_query("/chat-oauth2/callback/demo", sealed[:-4] + "AAAA") is None
    assert open_query("/chat-oauth2/callback/demo", "junk") is None
