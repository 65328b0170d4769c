"""The hub sign-in as a provider, on a real JupyterHub signing people in with OAuthenticator.

GenericOAuthenticator logs alice and bob in against oidc-provider (node; refresh tokens
rotate, and reusing a spent one ends the grant), with ``enable_auth_state`` and a crypt key.
``configure_hub(c, login_provider="login")`` is the one chat-oauth2 line. Each user's kernels
get the access token of their own sign-in with no consent page, refreshed once by the hub's
service for many concurrent readers, written back to the auth_state, so the hub's own
refresh keeps working; no refresh token reaches a user's process, home or store.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from support.hub import Kernel, RealHub, require_hub
from support.oidc import OidcProvider, client, start_oidc_provider
from support.scan import assert_no_secret

pytestmark = pytest.mark.timeout(600)

SECRET = "hub-login-secret-0123456789abcdef0123456789"
TTL = 40  # seconds: stale after half of it
CLOCK_TOLERANCE = 17  # oidc-provider still takes a token 15 s past its expiry


def _hub_config(hub: RealHub, op: OidcProvider) -> str:
    # Lines at the indentation of RealHub's config template (it dedents the whole).
    return _settings(hub, op).strip().replace("\n", "\n" + " " * 12)


def _settings(hub: RealHub, op: OidcProvider) -> str:
    return f"""
c.JupyterHub.authenticator_class = "generic-oauth"
c.GenericOAuthenticator.client_id = "hub"
c.GenericOAuthenticator.client_secret = {SECRET!r}
c.GenericOAuthenticator.oauth_callback_url = {hub.url + "hub/oauth_callback"!r}
c.GenericOAuthenticator.authorize_url = {op.issuer + "/auth"!r}
c.GenericOAuthenticator.token_url = {op.issuer + "/token"!r}
c.GenericOAuthenticator.userdata_url = {op.issuer + "/me"!r}
c.GenericOAuthenticator.username_claim = "sub"
c.GenericOAuthenticator.scope = ["openid", "offline_access"]
c.GenericOAuthenticator.allowed_users = {{"alice", "bob"}}
c.Authenticator.enable_auth_state = True
# The hub checks a signed-in browser's tokens at every request (refresh_user), not every 5 min.
c.Authenticator.auth_refresh_age = 1
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RealHub, OidcProvider]]:
    require_hub()
    root = tmp_path_factory.mktemp("hub-login")
    hub = RealHub(root / "hub", base_url="/jh/", hub_args=", login_provider='login'")
    metadata = client(
        "hub",
        secret=SECRET,
        redirect_uris=[f"{hub.url}hub/oauth_callback", f"{hub.callback_base}/login"],
        application_type="web",
    )
    op = start_oidc_provider(
        root / "op", {"clients": [metadata], "ttl": {"AccessToken": TTL}, "rotate_refresh": True}
    )
    hub.extra_config = _hub_config(hub, op)
    # What the authenticator's settings do not say: where the id_tokens are checked.
    more = {"issuer": op.issuer, "jwksUri": op.metadata()["jwks_uri"]}
    hub.hub_args += f", providers={{'login': {more!r}}}"
    hub.hub_env["JUPYTERHUB_CRYPT_KEY"] = os.urandom(32).hex()
    try:
        hub.start()
        yield hub, op
    finally:
        hub.stop()
        op.stop()


class SignedIn:
    """A person's browser, signed in to the hub through the provider (one cookie jar)."""

    def __init__(self, hub: RealHub, op: OidcProvider, user: str) -> None:
        self.hub, self.op, self.user = hub, op, user
        self.http = httpx.Client(timeout=60, trust_env=False)
        self.sign_in()

    def sign_in(self) -> None:
        """Sign in at the hub's login button: the provider's login and consent pages."""
        answer = self.http.get(f"{self.hub.url}hub/oauth_login")
        for _ in range(30):
            url = str(answer.url)
            if answer.is_redirect:
                target = urljoin(url, answer.headers["location"])
                if urlsplit(target).path.startswith(f"{self.hub.base_url}hub/oauth_callback"):
                    done = self.http.get(target)
                    assert done.status_code == 302, done.text[:500]
                    return
                answer = self.http.get(target)
            elif self._at_provider(answer):
                answer = self._interact(answer)
            else:
                raise AssertionError(f"{answer.status_code} at {url}: {answer.text[:500]}")
        raise AssertionError("the sign-in never came back to the hub")

    def browse(self, url: str) -> httpx.Response:
        """Open ``url`` and follow it through the hub, the provider's pages and back."""
        answer = self.http.get(url)
        for _ in range(40):
            current = str(answer.url)
            if answer.is_redirect:
                answer = self.http.get(urljoin(current, answer.headers["location"]))
            elif self._at_provider(answer):
                answer = self._interact(answer)
            else:
                return answer
        raise AssertionError(f"still redirected at {answer.url}")

    def _at_provider(self, answer: httpx.Response) -> bool:
        return str(answer.url).startswith(self.op.issuer) and "/interaction/" in str(answer.url)

    def _interact(self, answer: httpx.Response) -> httpx.Response:
        """The provider's page: log in as this person, or confirm the consent."""
        path = urlsplit(str(answer.url)).path
        if 'name="login"' in answer.text:
            return self.http.post(f"{self.op.issuer}{path}/login", data={"login": self.user})
        return self.http.post(f"{self.op.issuer}{path}/confirm")

    def home_status(self) -> int:
        """The hub's home page: 200 while signed in (the hub refreshes the sign-in first)."""
        return self.http.get(f"{self.hub.url}hub/home", follow_redirects=False).status_code

    def close(self) -> None:
        """Close the connections."""
        self.http.close()


def _auth_state(hub: RealHub, user: str) -> dict[str, Any]:
    answer = hub.api("GET", f"users/{user}")
    answer.raise_for_status()
    state = answer.json()["auth_state"]
    assert isinstance(state, dict)
    return state


def _userinfo(op: OidcProvider, token: str) -> dict[str, Any]:
    answer = httpx.get(f"{op.issuer}/me", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _revoke(op: OidcProvider, token: str, hint: str) -> None:
    answer = httpx.post(
        f"{op.issuer}/token/revocation",
        data={"token": token, "token_type_hint": hint},
        auth=("hub", SECRET),
    )
    assert answer.status_code == 200, answer.text


def _refreshes(op: OidcProvider) -> dict[str, int]:
    return {k: v for k, v in op.counters()["tokens"].items() if k.startswith("refresh_token")}


READ = (
    "from chat_oauth2_nb import create_oauth2_client\n"
    "client = create_oauth2_client('login')\n"
    "print(client.get_access_token_for_user().token)\n"
)

CONCURRENT = (
    "import concurrent.futures\n"
    "with concurrent.futures.ThreadPoolExecutor(4) as pool:\n"
    "    got = list(pool.map(lambda _: client.get_access_token_for_user().token, range(4)))\n"
    "print(' '.join(got))\n"
)


def _wait_stale(expires_at: float) -> None:
    # Stale once half its life is left (the leeway is capped there): then every reader asks.
    time.sleep(max(0.0, expires_at - TTL / 2 - time.time() + 1))


def test_the_hub_sign_in_reaches_kernels_refreshed_once_and_written_back(
    setup: tuple[RealHub, OidcProvider],
) -> None:
    hub, op = setup
    alice = SignedIn(hub, op, "alice")
    consents = op.counters()["consent_pages"]
    state = _auth_state(hub, "alice")
    first_refresh = state["refresh_token"]
    assert first_refresh, "the sign-in came without a refresh token"

    # Her notebook: the sign-in's own access token, no consent page, userinfo says alice.
    server = hub.spawn("alice")
    one, two = Kernel(hub, server), Kernel(hub, server)
    token = one.run(READ).strip()
    assert token == state["access_token"]
    assert _userinfo(op, token)["sub"] == "alice"
    assert two.run(READ).strip() == token
    assert op.counters()["consent_pages"] == consents

    # It goes stale: 8 concurrent reads from two kernels, one refresh at the provider.
    before = _refreshes(op)
    _wait_stale(_auth_state(hub, "alice")["chat_oauth2_nb_expires_at"])
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        outputs = list(pool.map(lambda kernel: kernel.run(CONCURRENT), (one, two)))
    seen = {t for out in outputs for t in out.split()}
    after = _refreshes(op)
    assert after.get("refresh_token:200", 0) == before.get("refresh_token:200", 0) + 1, after
    assert len(seen) == 1 and token not in seen, outputs
    (new_token,) = seen
    assert _userinfo(op, new_token)["sub"] == "alice"
    # Written back: the hub's auth_state holds the new tokens, the spent refresh token gone.
    state = _auth_state(hub, "alice")
    assert state["access_token"] == new_token
    assert state["refresh_token"] and state["refresh_token"] != first_refresh
    assert state["token_response"]["access_token"] == new_token

    # The hub's own refresh (OAuthenticator's refresh_user, once the provider refuses the
    # expired token: oidc-provider allows 15 s of clock tolerance) uses the rotated refresh
    # token: no reuse detected, alice stays signed in.
    time.sleep(max(0.0, state["chat_oauth2_nb_expires_at"] + CLOCK_TOLERANCE - time.time()))
    status = alice.home_status()
    why = f"{op.counters()}\n{hub.log()[-3000:]}"
    assert status == 200, why
    hub_refreshed = _auth_state(hub, "alice")
    assert hub_refreshed["access_token"] != new_token, why
    counted = _refreshes(op)
    assert counted.get("refresh_token:200", 0) == after.get("refresh_token:200", 0) + 1, why
    assert not [k for k in counted if not k.endswith(":200")], counted
    # Her kernel, told its token was refused, gets what the hub got: no second refresh.
    renewed = one.run("print(client.refresh_user_access_token().token)").strip()
    assert renewed == hub_refreshed["access_token"]
    assert _refreshes(op) == counted
    assert alice.home_status() == 200
    alice.close()


def test_bob_gets_only_his_own_sign_in(setup: tuple[RealHub, OidcProvider]) -> None:
    hub, op = setup
    bob = SignedIn(hub, op, "bob")
    kernel = Kernel(hub, hub.spawn("bob"))
    token = kernel.run(READ).strip()
    assert _userinfo(op, token)["sub"] == "bob"
    assert token == _auth_state(hub, "bob")["access_token"]
    # Naming alice gets bob nothing of hers, through his server or straight at the service.
    error = kernel.run(
        "try:\n"
        "    client.get_access_token_for_user('alice')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
        "import os, httpx\n"
        "url = os.environ['CHAT_OAUTH2_NB_HUB_BROKER_URL']\n"
        "mine = {'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']}\n"
        "r = httpx.post(f'{url}/token/login', json={'user': 'alice'}, headers=mine)\n"
        "print(r.status_code)\n"
    )
    alice = _auth_state(hub, "alice")
    assert alice["access_token"] not in error
    assert error.strip().endswith("404"), error
    bob.close()


def _asking_for_more(
    hub: RealHub, op: OidcProvider, scope: str
) -> tuple[SignedIn, Kernel, str, str]:
    """Alice signed in, her kernel's sign-in token, and its start link for one more scope."""
    alice = SignedIn(hub, op, "alice")
    kernel = Kernel(hub, hub.spawn("alice"))
    signed_in = kernel.run(READ).strip()
    link = kernel.run(
        f"print(client.get_user_authorization_url(scopes=['openid', 'offline_access', {scope!r}]))"
    ).strip()
    return alice, kernel, signed_in, link


def test_more_scopes_than_the_sign_in_is_an_upgrade(setup: tuple[RealHub, OidcProvider]) -> None:
    hub, op = setup
    alice, kernel, signed_in, link = _asking_for_more(hub, op, "profile")
    # Meanwhile the sign-in's token still serves.
    assert kernel.run("print(client.get_access_token_for_user().token)").strip() == signed_in
    consents = op.counters()["consent_pages"]
    page = alice.browse(link)  # through the hub's redirect URI, as any declared provider
    assert page.status_code == 200 and "Authorized" in page.text, page.text[:800]
    token, scope = kernel.run(
        "data = client.wait_for_authorization(timeout=60)\nprint(data.token, '|', data.scope)"
    ).split(" | ")
    assert "profile" in scope.split()
    assert _userinfo(op, token)["name"] == "alice"  # the new scope's claim
    assert op.counters()["consent_pages"] == consents + 1  # for the new scope only
    # It replaced the sign-in's tokens where the hub keeps them.
    state = _auth_state(hub, "alice")
    assert state["access_token"] == token and "profile" in state["scope"]
    alice.close()


def test_an_upgrade_by_another_account_is_refused(setup: tuple[RealHub, OidcProvider]) -> None:
    hub, op = setup
    alice, kernel, signed_in, link = _asking_for_more(hub, op, "email")
    # In alice's browser, someone signs in at the provider as mallory for the upgrade.
    for cookie in list(alice.http.cookies.jar):
        if cookie.name.startswith(("_session", "_interaction", "_grant")):
            alice.http.cookies.jar.clear(cookie.domain, cookie.path, cookie.name)
    alice.user = "mallory"
    alice.browse(link)
    error = kernel.run(
        "try:\n"
        "    client.wait_for_authorization(timeout=60)\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, '|', exc)\n"
    )
    assert "was not signed by the person the hub signed in" in error, error
    # Her sign-in's tokens are untouched, and none of mallory's is kept for her.
    state = _auth_state(hub, "alice")
    assert _userinfo(op, state["access_token"])["sub"] == "alice"
    assert kernel.run(READ).strip() in (signed_in, state["access_token"])
    alice.close()


def _scan_processes(secrets: list[str]) -> None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            environment = (entry / "environ").read_bytes().decode("latin-1")
            assert_no_secret(environment, secrets, f"/proc/{entry.name}/environ")


def test_no_refresh_token_reaches_a_user(setup: tuple[RealHub, OidcProvider]) -> None:
    hub, _ = setup
    refresh_tokens = [_auth_state(hub, user)["refresh_token"] for user in ("alice", "bob")]
    assert all(refresh_tokens)
    _scan_processes(refresh_tokens)
    for user in ("alice", "bob"):
        files = "\n".join(
            p.read_bytes().decode("latin-1") for p in hub.home(user).rglob("*") if p.is_file()
        )
        assert_no_secret(files, refresh_tokens, f"{user}'s home")
        record = hub.store(user).get_token("login", user)
        assert record is not None and record.data.refresh_token is None
        held = hub.store(user).get_held_refresh_token("login", user, record.provider or "")
        assert held is None
    assert_no_secret(hub.log(full=True), refresh_tokens, "the hub's log")


def test_a_revoked_sign_in_says_sign_in_to_the_hub_again(
    setup: tuple[RealHub, OidcProvider],
) -> None:
    hub, op = setup
    state = _auth_state(hub, "bob")
    _revoke(op, state["refresh_token"], "refresh_token")
    kernel = Kernel(hub, hub.spawn("bob"))
    _wait_stale(state["chat_oauth2_nb_expires_at"])
    error = kernel.run(
        "from chat_oauth2_nb import create_oauth2_client\n"
        "client = create_oauth2_client('login')\n"
        "try:\n"
        "    client.get_access_token_for_user()\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, '|', exc)\n"
    ).strip()
    # (A warning line of the kernel's log may come first.)
    assert "GrantRevokedError | The hub sign-in of 'bob' has ended" in error, error
    assert "Sign in to the hub again" in error, error
    assert f"{hub.url}hub/login" in error, error
