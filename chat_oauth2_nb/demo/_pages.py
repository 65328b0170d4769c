"""HTML of the demo provider: the consent page, the error page, the index.

Every value that came from a request or a client registration goes through ``_e``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

__all__ = [
    "HTML_HEADERS",
    "consent_page",
    "device_consent_page",
    "device_done_page",
    "device_entry_page",
    "error_page",
    "index_page",
]

HTML_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-store"),
    # No scripts at all; and the consent page must not be framed (clickjacking).
    # form-action stays open: the Approve answer redirects to the client's callback.
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
]

_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
main { max-width: 34rem; margin: 3rem auto; background: #fff; padding: 2rem;
       border-radius: 10px; box-shadow: 0 1px 4px rgba(0,0,0,.12); }
h1 { font-size: 1.35rem; margin-top: 0; }
code { background: #eef0f3; padding: 0 .25em; border-radius: 3px; word-break: break-all; }
ul { padding-left: 1.2rem; }
label { display: block; margin: 1rem 0; }
input[type=text] { font: inherit; padding: .3rem .5rem; width: 100%; box-sizing: border-box; }
.buttons { display: flex; gap: .75rem; }
button { font: inherit; padding: .45rem 1.3rem; border-radius: 6px; border: 1px solid #8a93a5;
         background: #fff; cursor: pointer; }
button.approve { background: #1f6feb; border-color: #1f6feb; color: #fff; }
.note { color: #5b6475; font-size: .9rem; }
.error { color: #b42318; }
.user-code { font: 600 1.6rem/1.2 ui-monospace, monospace; letter-spacing: .12em; }
"""


def _e(value: str) -> str:
    return html.escape(value, quote=True)


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def _scopes_asked(scopes: Sequence[str]) -> str:
    if not scopes:
        return '<p id="scopes">It asks for no particular scope.</p>'
    scope_list = "".join(f'<li><code class="scope">{_e(s)}</code></li>' for s in scopes)
    return f'<p>It asks for these scopes:</p><ul id="scopes">{scope_list}</ul>'


def consent_page(
    *,
    client_name: str,
    client_id: str,
    scopes: Sequence[str],
    redirect_uri: str,
    action: str,
    ticket: str,
    username: str = "demo-user",
) -> str:
    """The login/consent page: who asks, for what, and Approve / Deny."""
    wants = _scopes_asked(scopes)
    body = (
        f'<h1>Authorize <span id="client-name">{_e(client_name)}</span></h1>'
        f"<p><strong>{_e(client_name)}</strong> (client id <code>{_e(client_id)}</code>) "
        "wants access to your account on this demo provider.</p>"
        f"{wants}"
        f'<form id="consent" method="post" action="{_e(action)}">'
        f'<label>Sign in as <input type="text" name="username" value="{_e(username)}" '
        'autocomplete="username" maxlength="200"></label>'
        f'<input type="hidden" name="consent_ticket" value="{_e(ticket)}">'
        '<div class="buttons">'
        '<button class="approve" type="submit" name="decision" value="approve">Approve</button>'
        '<button type="submit" name="decision" value="deny">Deny</button>'
        "</div></form>"
        f'<p class="note">Either answer sends you back to <code>{_e(redirect_uri)}</code>. '
        "This is the chat_oauth2_nb demo provider: there is no password, any name works.</p>"
    )
    return _page(f"Authorize {client_name}", body)


def device_entry_page(*, action: str, user_code: str = "", error: str | None = None) -> str:
    """The verification page (RFC 8628 §3.3): type the code the notebook shows."""
    problem = f'<p class="error" id="error">{_e(error)}</p>' if error else ""
    body = (
        "<h1>Connect a device</h1>"
        f"{problem}"
        "<p>Enter the code shown in your notebook (or on your device).</p>"
        f'<form id="device-entry" method="get" action="{_e(action)}">'
        '<label>Code <input type="text" name="user_code" '
        f'value="{_e(user_code)}" autocomplete="off" autocapitalize="characters" '
        'spellcheck="false" maxlength="64" class="user-code"></label>'
        '<div class="buttons"><button class="approve" type="submit">Continue</button></div>'
        "</form>"
    )
    return _page("Connect a device", body)


def device_consent_page(
    *,
    client_name: str,
    client_id: str,
    scopes: Sequence[str],
    user_code: str,
    action: str,
    ticket: str,
    username: str = "demo-user",
) -> str:
    """Confirm the code, then Approve / Deny the device's request."""
    wants = _scopes_asked(scopes)
    body = (
        f'<h1>Authorize <span id="client-name">{_e(client_name)}</span> on a device</h1>'
        "<p>Check that this is the code your notebook shows:</p>"
        f'<p class="user-code" id="user-code">{_e(user_code)}</p>'
        f"<p><strong>{_e(client_name)}</strong> (client id <code>{_e(client_id)}</code>) "
        "wants access to your account on this demo provider.</p>"
        f"{wants}"
        f'<form id="consent" method="post" action="{_e(action)}">'
        f'<label>Sign in as <input type="text" name="username" value="{_e(username)}" '
        'autocomplete="username" maxlength="200"></label>'
        f'<input type="hidden" name="user_code" value="{_e(user_code)}">'
        f'<input type="hidden" name="consent_ticket" value="{_e(ticket)}">'
        '<div class="buttons">'
        '<button class="approve" type="submit" name="decision" value="approve">Approve</button>'
        '<button type="submit" name="decision" value="deny">Deny</button>'
        "</div></form>"
        '<p class="note">If you did not start this from your own notebook, click Deny: '
        "someone may be trying to get you to approve their device.</p>"
    )
    return _page(f"Authorize {client_name}", body)


def device_done_page(*, client_name: str, approved: bool) -> str:
    """After the answer: go back to the notebook, which is polling."""
    if approved:
        title = "Device authorized"
        said = f'<p id="outcome">You approved <strong>{_e(client_name)}</strong>.</p>'
    else:
        title = "Request denied"
        said = f'<p id="outcome">You denied <strong>{_e(client_name)}</strong> access.</p>'
    body = f"<h1>{title}</h1>{said}<p>You can close this tab and go back to your notebook.</p>"
    return _page(title, body)


def error_page(*, error: str, description: str, hint: str) -> str:
    """An error the provider must show itself instead of redirecting (RFC 6749 §4.1.2.1)."""
    body = (
        "<h1>This authorization request cannot go on</h1>"
        f'<p class="error"><code id="error">{_e(error)}</code>: '
        f'<span id="error-description">{_e(description)}</span></p>'
        f"<p>{_e(hint)}</p>"
    )
    return _page(f"Authorization error: {error}", body)


def index_page(issuer: str) -> str:
    """A short page at / telling a curious person what runs here."""
    links = "".join(
        f"<li><code>{_e(issuer + path)}</code></li>"
        for path in (
            "/.well-known/oauth-authorization-server",
            "/authorize",
            "/device_authorization",
            "/device",
            "/token",
            "/revoke",
            "/introspect",
            "/api/me",
        )
    )
    body = (
        "<h1>chat_oauth2_nb demo OAuth2 provider</h1>"
        "<p>A local, offline authorization server for tutorials and tests.</p>"
        f"<ul>{links}</ul>"
    )
    return _page("chat_oauth2_nb demo provider", body)
