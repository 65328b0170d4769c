"""The ``%oauth2`` line magic: ``%load_ext chat_oauth2_nb``, then ``%oauth2 google``.

``%oauth2 PRESET [--PARAM VALUE ...]`` shows the panel of a preset (see
:mod:`chat_oauth2_nb.presets`), ``%oauth2 ALIAS`` the panel of a provider the administrator
declared on this server or hub (any alias, preset name or not: no credentials needed); a
preset's client id and secret come from the environment
(``CHAT_OAUTH2_<ALIAS>_CLIENT_ID`` / ``_CLIENT_SECRET``), so no secret is typed into a
notebook. Options: ``--alias``, ``--user``, ``--scopes "a b"``, ``--mode``, ``--as NAME``
(bind the client to a variable); every other ``--name value`` is a preset parameter
(``--tenant``, ``--base-url``, ``--realm``, ``--server-url``, ``--issuer``).
``%oauth2 status`` shows the dashboard of every stored token.
"""

from __future__ import annotations

import shlex
from typing import Any

from ..config import env_var_name, scopes_argument
from ..errors import ConfigurationError
from ..presets import PRESETS
from ..presets import config as preset_config
from .client import OAuth2Client, create_oauth2_client

__all__ = ["USAGE", "load_ipython_extension", "oauth2_magic"]

USAGE = (
    "Usage: %oauth2 PRESET|DECLARED-ALIAS [--alias A] [--user U] [--scopes 'a b'] [--mode M] [--as NAME] "
    "[--PARAM VALUE ...]  (presets: " + ", ".join(sorted(PRESETS)) + ")\n"
    "       %oauth2 status   (every stored token)\n"
    "Client id and secret come from CHAT_OAUTH2_<ALIAS>_CLIENT_ID and _CLIENT_SECRET."
)
_OPTIONS = ("alias", "user", "scopes", "mode", "as")

# One client per (preset, alias, parameters) in this kernel: showing the same panel again
# reuses it (and its loopback listener) instead of starting another.
_clients: dict[tuple[str, str, tuple[tuple[str, str], ...]], OAuth2Client] = {}


def _usage_error(message: str) -> Exception:
    from IPython.core.error import UsageError

    return UsageError(message)


def _parse(line: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """(preset, magic options, preset parameters) from the magic's line."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise _usage_error(f"{exc}\n{USAGE}") from None
    if not words or words[0] in ("-h", "--help", "help"):
        raise _usage_error(USAGE)
    name, rest = words[0], words[1:]
    options: dict[str, str] = {}
    params: dict[str, str] = {}
    while rest:
        flag = rest.pop(0)
        if not flag.startswith("--") or len(flag) == 2:
            raise _usage_error(f"Expected --name value, got {flag!r}.\n{USAGE}")
        key, has_value, value = flag[2:].partition("=")
        if not has_value:
            if not rest:
                raise _usage_error(f"{flag} needs a value.\n{USAGE}")
            value = rest.pop(0)
        key = key.replace("-", "_")
        (options if key in _OPTIONS else params)[key] = value
    return name, options, params


def oauth2_magic(line: str, shell: Any = None) -> Any:
    """``%oauth2 PRESET …`` returns the preset's panel; ``%oauth2 status`` the dashboard."""
    name, options, params = _parse(line)
    if name == "status":
        if options or params:
            raise _usage_error(f"%oauth2 status takes no options.\n{USAGE}")
        from .board import dashboard

        return dashboard()
    declared = _declared_client(name, options, params)
    if declared is not None:
        return _show(declared, options, shell)
    if name not in PRESETS:
        raise _usage_error(f"No preset or declared provider named {name!r}.\n{USAGE}")
    alias = options.get("alias", name)
    for secret in ("client_id", "client_secret"):
        if secret in params:
            raise _usage_error(
                f"--{secret.replace('_', '-')} is not an option: %oauth2 reads "
                f"{env_var_name(alias, secret.upper())} from the environment, so that no "
                "credential is typed into (and saved with) the notebook."
            )
    key = (name, alias, tuple(sorted(params.items())))
    client = _clients.get(key)
    if client is None:
        try:
            # Parameters go to the preset only: never to create_oauth2_client(), whose
            # keywords include the secret, which belongs in the environment, not a notebook.
            config = preset_config(name, alias=alias, **params)
            client = create_oauth2_client(config, mode=options.get("mode"))  # type: ignore[arg-type]
        except ConfigurationError as exc:
            raise _usage_error(
                f"{exc}\n(%oauth2 reads {env_var_name(alias, 'CLIENT_ID')} and "
                f"{env_var_name(alias, 'CLIENT_SECRET')} from the environment.)"
            ) from None
        for old_key, old in list(_clients.items()):
            if old_key[1] == alias:  # the same alias with other parameters: replaced
                old.close()
                del _clients[old_key]
        _clients[key] = client
    return _show(client, options, shell)


def _declared_client(
    name: str, options: dict[str, str], params: dict[str, str]
) -> OAuth2Client | None:
    """The client of the provider declared as ``name`` on this server or hub, else None.

    A preset name with the person's own credentials in the environment stays the preset;
    ``--alias`` or preset parameters mean the person's own client too.
    """
    from ..kernel.declared import find_declared

    if params or "alias" in options or find_declared(name, {}) is None:
        return None
    key = ("", name, ())
    client = _clients.get(key)
    if client is None:
        client = create_oauth2_client(name, mode=options.get("mode"))  # type: ignore[arg-type]
        _clients[key] = client
    return client


def _show(client: OAuth2Client, options: dict[str, str], shell: Any) -> Any:
    """Bind ``--as``, ask for ``--scopes`` and return the panel of ``client`` for ``--user``."""
    if "as" in options:
        if not options["as"].isidentifier():
            raise _usage_error(f"--as needs a variable name, got {options['as']!r}.")
        if shell is not None:
            shell.user_ns[options["as"]] = client
    user = options.get("user")
    scopes = scopes_argument(options.get("scopes"))
    panel = client.panel(user)
    if scopes:
        # Extra scopes: the panel offers the link that asks for them (an upgrade when the
        # user is authorized already).
        client.get_user_authorization_url(user, scopes)
    return panel


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%oauth2`` in an IPython shell (``%load_ext chat_oauth2_nb``)."""

    def oauth2(line: str) -> Any:
        return oauth2_magic(line, ipython)

    oauth2.__doc__ = __doc__
    ipython.register_magic_function(oauth2, magic_kind="line", magic_name="oauth2")
