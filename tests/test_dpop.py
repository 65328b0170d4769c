"""DPoP (RFC 9449) end to end against the demo provider: bound tokens, proofs, nonces, leaks.

Each attack a DPoP binding exists for is performed: the token replayed as a Bearer token, with
a proof from another key, the refresh token used with another key; and every channel a
notebook could leak through is scanned for the private key and every proof.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

import httpx
import ipywidgets
import pytest
from conftest import SecretLog
from support.scan import assert_no_secret

from chat_oauth2_nb import NotAuthorizedError, OAuth2Client
from chat_oauth2_nb.demo import DemoProvider
from chat_oauth2_nb.oauth import refresh_request
from chat_oauth2_nb.oauth.dpop import DPoPKey, htu_of
from chat_oauth2_nb.store import Store, new_store_key

Make = Callable[..., OAuth2Client]


def bound(authorized: Make, **kwargs: object) -> OAuth2Client:
    return authorized(dpop=True, **kwargs)


def stored_key(store: Store, alias: str = "demo", user: str = "ada") -> DPoPKey:
    record = store.get_token(alias, user)
    assert record is not None and record.data.dpop_key is not None
    return DPoPKey.from_json(record.data.dpop_key)


def test_a_bound_token_works_with_a_proof_and_is_refused_without_the_key(
    authorized: Make, provider: DemoProvider, store: Store
) -> None:
    client = bound(authorized)
    token = client.get_access_token_for_user("ada")
    assert token is not None and token.token_type == "DPoP" and token.bound == "DPoP"
    key = stored_key(store)
    # The provider bound the token to the key the store holds (cnf.jkt).
    assert provider.introspect(token.token)["cnf"] == {"jkt": key.thumbprint}
    with httpx.Client(auth=client.auth("ada")) as http:
        answer = http.get(provider.api_url)
    assert answer.status_code == 200, answer.text
    assert answer.json()["user"] == "demo-user"
    # Leaked as a Bearer token: refused.
    leaked = httpx.get(provider.api_url, headers={"Authorization": f"Bearer {token.token}"})
    assert leaked.status_code == 401
    assert "DPoP" in leaked.headers["www-authenticate"]
    # With a valid proof from another key (the thief's own): refused.
    thief = DPoPKey.generate()
    proof = thief.proof("GET", provider.api_url, access_token=token.token)
    stolen = httpx.get(
        provider.api_url, headers={"Authorization": f"DPoP {token.token}", "DPoP": proof}
    )
    assert stolen.status_code == 401
    assert "another key" in stolen.json()["error_description"]
    # A proof of the right key, replayed: refused (its jti was used).
    replay = httpx.get(
        provider.api_url,
        headers={
            "Authorization": f"DPoP {token.token}",
            "DPoP": provider.dpop.proofs[-1],
        },
    )
    assert replay.status_code == 401


def test_the_refresh_token_is_bound_to_the_same_key(
    authorized: Make, provider: DemoProvider, store: Store
) -> None:
    client = bound(authorized)
    key = stored_key(store)
    first = store.get_token("demo", "ada")
    assert first is not None and first.data.refresh_token is not None
    # A thief with the refresh token but another key gets nothing from the provider.
    request = refresh_request(client.config, refresh_token=first.data.refresh_token)
    thief = DPoPKey.generate()
    headers = {**request.headers, "DPoP": thief.proof("POST", request.url)}
    refused = httpx.post(request.url, headers=headers, content=request.body)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    # The holder refreshes with its own key, and the new token is bound to the same key.
    fresh = client.refresh_user_access_token("ada")
    assert fresh.token_type == "DPoP" and fresh.token != first.data.token
    assert stored_key(store).thumbprint == key.thumbprint
    assert provider.introspect(fresh.token)["cnf"] == {"jkt": key.thumbprint}
    with httpx.Client(auth=client.auth("ada")) as http:
        assert http.get(provider.api_url).status_code == 200


def test_a_proof_is_never_reused(authorized: Make, provider: DemoProvider) -> None:
    client = bound(authorized)
    with httpx.Client(auth=client.auth("ada")) as http:
        for _ in range(5):
            assert http.get(provider.api_url).status_code == 200
    client.refresh_user_access_token("ada")
    session = __import__("requests").Session()
    session.auth = client.requests_auth("ada")
    for _ in range(3):
        assert session.get(provider.api_url).status_code == 200
    jtis = provider.dpop.seen_jtis
    # Code exchange + 5 API calls + refresh + 3 API calls, every one with its own proof.
    assert len(jtis) == 10
    assert len(set(jtis)) == len(jtis)
    assert len(set(provider.dpop.proofs)) == len(provider.dpop.proofs) == 10


def test_the_servers_nonce_is_answered_at_the_token_endpoint_and_the_api(
    authorized: Make, provider: DemoProvider
) -> None:
    provider.dpop.require_nonce = True
    client = bound(authorized)  # the code exchange is asked for a nonce, and answers it
    assert provider.dpop.refused.count("use_dpop_nonce") == 1
    provider.dpop.new_nonce()  # the API's next answer asks for the new one
    with httpx.Client(auth=client.auth("ada")) as http:
        answer = http.get(provider.api_url)
    assert answer.status_code == 200, answer.text
    assert provider.dpop.refused.count("use_dpop_nonce") == 2
    provider.dpop.new_nonce()
    session = __import__("requests").Session()
    session.auth = client.requests_auth("ada")
    assert session.get(provider.api_url).status_code == 200
    provider.dpop.new_nonce()
    assert client.refresh_user_access_token("ada").token_type == "DPoP"
    assert provider.dpop.refused.count("use_dpop_nonce") == 4


@pytest.mark.parametrize("adapter", ["google-auth", "azure-core"])
def test_adapters_that_cannot_prove_refuse_a_bound_token(authorized: Make, adapter: str) -> None:
    client = bound(authorized)
    with pytest.raises(NotAuthorizedError) as info:
        if adapter == "google-auth":
            client.google_credentials("ada")
        else:
            client.azure_credential("ada").get_token("https://x.example/.default")
    assert "DPoP-bound" in str(info.value) and "client.auth()" in str(info.value.hint)


def test_a_provider_without_dpop_gives_a_bearer_token_and_no_key_is_kept(
    authorized: Make, provider: DemoProvider, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(provider.dpop, "check", lambda *a, **k: None)  # ignores proofs
    client = bound(authorized)
    token = client.get_access_token_for_user("ada")
    assert token is not None and token.token_type == "Bearer" and token.dpop_key is None
    with httpx.Client(auth=client.auth("ada")) as http:
        assert http.get(provider.api_url).status_code == 200


def test_no_key_or_proof_in_any_log_output_or_trait(
    make_client: Make, provider: DemoProvider, tmp_path: object, secret_log: SecretLog
) -> None:
    sealed = Store(f"{tmp_path}/sealed/store.sqlite3", key=new_store_key())
    client = make_client(dpop=True, store=sealed)
    url = client.get_user_authorization_url("ada")
    assert provider.approve(url).status_code == 200
    token = client.wait_for_authorization("ada", timeout=60)
    with httpx.Client(auth=client.auth("ada")) as http:
        assert http.get(provider.api_url).status_code == 200
    client.refresh_user_access_token("ada")
    panel = client.panel("ada")
    try:
        state = json.dumps(ipywidgets.Widget.get_manager_state(drop_defaults=False), default=str)
        assert "bound to a DPoP key" in state  # the panel says the token is bound
        record = sealed.get_token("demo", "ada")
        assert record is not None and record.data.dpop_key is not None
        private = json.loads(record.data.dpop_key)["d"]
        secrets = [private, record.data.dpop_key, *provider.dpop.proofs]
        with sqlite3.connect(sealed.path) as db:
            dump = "\n".join(db.iterdump())
        channels = {
            "the log at DEBUG": secret_log.text,
            "client.http_log": repr(list(client.http_log)),
            "the saved widget state": state,
            "reprs": repr(client) + repr(token) + repr(record) + repr(stored_key(sealed)),
            "the sealed store file": dump,
        }
    finally:
        panel.close()
    assert len(provider.dpop.proofs) == 3
    for where, text in channels.items():
        assert_no_secret(text, secrets, where)


def test_htu_drops_query_and_fragment() -> None:
    assert htu_of("HTTPS://API.Example.com:8443/v1/x?q=1#frag") == (
        "https://api.example.com:8443/v1/x"
    )


@pytest.mark.parametrize(
    ("dpop", "algs", "verdict", "said"),
    [
        (True, ["ES256"], "ok", "bound with DPoP"),
        (False, ["ES256"], "ok", "supports DPoP"),
        (True, None, "warn", "lists no dpop_signing_alg_values_supported"),
        (True, ["RS256"], "fail", "signs with ES256"),
        (False, None, "skipped", "lists no DPoP support"),
    ],
)
def test_the_doctor_notes_dpop_support(
    make_client: Make,
    provider: DemoProvider,
    dpop: bool,
    algs: list[str] | None,
    verdict: str,
    said: str,
) -> None:
    provider.metadata_overrides["dpop_signing_alg_values_supported"] = algs
    report = make_client(dpop=dpop).diagnose()
    finding = report["metadata:dpop"]
    assert finding.verdict == verdict and said in finding.evidence
    if verdict in ("warn", "fail"):
        assert "dpop=False" in finding.action


def test_the_demo_command_line_demands_dpop_nonces_when_asked() -> None:
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "chat_oauth2_nb.demo", "--port", "0", "--dpop-nonce"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any("Ctrl-C" in line for line in lines):
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            lines.append(line)
        out = "".join(lines)
        issuer = out.split("issuer:")[1].split()[0]
        assert "dpop=True" in out
        key = DPoPKey.generate()
        token_url = f"{issuer}/token"
        body = {"grant_type": "refresh_token", "refresh_token": "x"}
        first = httpx.post(token_url, data=body, headers={"DPoP": key.proof("POST", token_url)})
        assert first.status_code == 400 and first.json()["error"] == "use_dpop_nonce"
        nonce = first.headers["DPoP-Nonce"]
        proof = key.proof("POST", token_url, nonce=nonce)
        second = httpx.post(token_url, data=body, headers={"DPoP": proof})
        assert second.json()["error"] != "use_dpop_nonce"  # past the proof, to the grant
    finally:
        proc.terminate()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
