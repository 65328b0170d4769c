"""The ``%oauth2`` line magic: ``%load_ext chat_oauth2_nb``, then ``%oauth2 google``.

``%oauth2 PRESET [--PARAM VALUE ...]`` shows the panel of a preset (see
:mod:`chat_oauth2_nb.presets`), ``%oauth2 ALIAS`` the panel of a provider the administrator
declared on this server or hub (any alias, preset name or not: no credentials needed); a
preset's client id and secret come from the environment
(``CHAT_OAUTH2_<ALIAS>_CLIENT_ID`` / ``_CLIENT_SECRET``), so no secret is typed into a
notebook. Options: ``--alias``, ``--user``, ``--scopes "a b"``, ``--mode``, ``--as NAME``
(bind the client to a variable); every other ``--name value`` is a preset parameter
(``--tenant``, ``--base-url``, ``--realm``, ``--server-url``, ``--issuer``).
``%oauth2 status`` shows the dashboard of every stored token. A mistyped name or option gets
the closest one suggested.
"""

from __future__ import annotations

import shlex
from typing import Any

from ..config import env_var_name, scopes_argument
from ..errors import ConfigurationError, OAuth2Error, did_you_mean
from ..presets import PRESETS, preset_parameters
from ..presets import config as preset_config
from .client import OAuth2Client, create_oauth2_client

__all__ = ["USAGE", "load_ipython_extension", "oauth2_magic"]

USAGE = (
    "Usage: %oauth2 PRESET|DECLARED-ALIAS [--alias A] [--user U] [--scopes 'a b'] [--mode M] "
    "[--as NAME] "
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


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _declared(name: str) -> bool:
    """Whether ``name`` is a provider declared on this kernel's Jupyter server; else an error."""
    from ..kernel.declared import providers, server_holder

    aliases: list[str] = []
    if server_holder() is not None:
        try:
            aliases = list(providers())
        except OAuth2Error:  # the server is gone: suggest among the presets only
            aliases = []
    if name in aliases:
        return True
    guess = did_you_mean(name, [*PRESETS, *aliases, "status"])
    declared = (
        f" (declared on this Jupyter server: {', '.join(sorted(aliases))})" if aliases else ""
    )
    raise _usage_error(
        f"No preset named {name!r}{' nor a declared provider' if aliases else ''}. "
        f"{guess}\n{USAGE}{declared}"
    )


def _preset_declared(name: str, options: dict[str, str], params: dict[str, str]) -> bool:
    """Whether the preset name ``name`` means the provider declared under that alias.

    A preset name with the person's own credentials in the environment stays the preset;
    ``--alias`` or preset parameters mean the person's own client too.
    """
    from ..kernel.declared import find_declared

    if params or "alias" in options:
        return False
    try:
        return find_declared(name, {}) is not None
    except OAuth2Error:  # the server is gone: the preset, whose errors say what to set
        return False


def _check_params(name: str, params: dict[str, str], declared: bool) -> None:
    """Refuse a --name that is neither an option nor the preset's parameter, with a guess."""
    accepted = [] if declared else preset_parameters(name)
    for key in sorted(set(params) - set(accepted) - {"client_id", "client_secret"}):
        guess = did_you_mean(_flag(key), [_flag(k) for k in (*_OPTIONS, *accepted)])
        takes = f"the {name!r} preset's parameters: {', '.join(map(_flag, accepted))}"
        raise _usage_error(
            f"{_flag(key)} is not an option of %oauth2"
            + (f" nor a parameter of the {name!r} preset" if not declared else "")
            + f". {guess}\nOptions: {', '.join(map(_flag, _OPTIONS))}"
            + (f"; {takes}" if accepted else "")
            + "."
        )


def oauth2_magic(line: str, shell: Any = None) -> Any:
    """``%oauth2 PRESET …`` returns the preset's panel; ``%oauth2 status`` the dashboard."""
    name, options, params = _parse(line)
    if name == "status":
        if options or params:
            raise _usage_error(f"%oauth2 status takes no options.\n{USAGE}")
        from .board import dashboard

        return dashboard()
    declared = _declared(name) if name not in PRESETS else _preset_declared(name, options, params)
    _check_params(name, params, declared)
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
            mode: Any = options.get("mode")
            if declared:  # the server holds its secret: nothing to read here
                client = create_oauth2_client(name, mode=mode)
            else:
                config = preset_config(name, alias=alias, **params)
                client = create_oauth2_client(config, mode=mode)
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
