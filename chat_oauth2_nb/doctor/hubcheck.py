"""Admin tooling: ``python -m chat_oauth2_nb.hub check`` diagnoses every declared provider.

For each provider ``configure_hub(c, providers=...)`` declares, it prints the exact redirect
URI to register at the provider and the doctor's report (endpoints, metadata, the client
credentials with a made-up code, the redirect URI, the clock) run with the hub's own
credentials. It runs in the administrator's shell, never in the router service, and keeps
nothing: the diagnosis opens no store and records no flow.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from ..config import ProviderConfig
from ..declarations import HUB_PROVIDERS, resolve_declarations
from ..errors import ConfigurationError, OAuth2Error
from ..routes import HUB_CALLBACK_ENV
from . import Report, Subject, diagnose

__all__ = ["check_declared", "main", "overridden_server_scopes"]

# configure_hub()'s names for the service's declarations (hub/config.py).
_PROVIDERS_FILE_ENV = "CHAT_OAUTH2_NB_BROKER_PROVIDERS_FILE"
_PROVIDERS_ENV = "CHAT_OAUTH2_NB_BROKER_PROVIDERS"


def check_declared(
    declared: Mapping[str, ProviderConfig],
    callback_base: str,
    *,
    timeout: float = 10.0,
    transport: httpx.BaseTransport | None = None,
) -> list[tuple[str, str, Report]]:
    """(alias, redirect URI to register, diagnosis) for each declared provider."""
    results: list[tuple[str, str, Report]] = []
    for alias, config in declared.items():
        redirect = f"{callback_base.rstrip('/')}/{alias}"
        # No store: the admin's shell holds no one's token, so the token checks are skipped.
        subject = Subject(config, redirect, timeout=timeout, transport=transport)
        results.append((alias, redirect, diagnose(subject)))
    return results


def _hub_config(path: Path) -> Any:
    from traitlets.config.loader import PyFileConfigLoader

    if not path.is_file():
        raise ConfigurationError(
            "--config",
            f"names {path}, which is not a file",
            "Run this in the hub's directory, or pass -f /path/to/jupyterhub_config.py.",
        )
    return PyFileConfigLoader(path.name, path=str(path.parent)).load_config()


def _service_environment(config: Any) -> dict[str, str]:
    """The environment configure_hub gave the managed service (the secrets' variables too)."""
    found: dict[str, str] = {}
    for service in dict.get(config.JupyterHub, "services") or []:
        environment = service.get("environment") or {}
        if _PROVIDERS_ENV in environment or _PROVIDERS_FILE_ENV in environment:
            found = {str(k): str(v) for k, v in environment.items()}
    return found


def overridden_server_scopes(config: Any, service_name: str = "chat-oauth2") -> str | None:
    """What is wrong when ``c.Spawner.server_token_scopes`` leaves out the service, or None.

    configure_hub gives the hub's "server" role the service's access scope; that setting,
    when set, replaces the role for servers' tokens, so every server's store key fetch and
    broker call would be refused (403).
    """
    chosen = dict.get(config.Spawner, "server_token_scopes")
    access = f"access:services!service={service_name}"
    if chosen is None or callable(chosen):
        return None
    if access in chosen or "access:services" in chosen:
        return None
    return (
        f"c.Spawner.server_token_scopes is set (after configure_hub(c), perhaps by another "
        f"tool) and leaves out {access!r}: every server's API token lacks it, so users' "
        f"servers cannot fetch their store key or reach the declared providers. Add {access!r} "
        "to that list, or call configure_hub(c) after it."
    )


def _declarations(config: Any, providers_file: str | None) -> dict[str, Any]:
    file = providers_file
    environment = _service_environment(config)
    if not file and _PROVIDERS_ENV in environment:
        value: Any = json.loads(environment[_PROVIDERS_ENV])
        return value if isinstance(value, dict) else {}
    file = file or environment.get(_PROVIDERS_FILE_ENV)
    if not file:
        raise ConfigurationError(
            "providers",
            "are not declared in this hub's config",
            "Add providers={...} to configure_hub(c) in jupyterhub_config.py, or pass "
            "--providers-file for a service you run yourself.",
        )
    value = json.loads(Path(file).read_text())
    if not isinstance(value, dict):
        raise ConfigurationError("--providers-file", f"{file} is not a JSON object", "")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Print each declared provider's redirect URI and diagnosis; 1 when any check failed."""
    parser = argparse.ArgumentParser(
        prog="python -m chat_oauth2_nb.hub check",
        description="Diagnose the providers declared with configure_hub(c, providers=...).",
    )
    parser.add_argument("-f", "--config", default="jupyterhub_config.py")
    parser.add_argument("--providers-file", default=None)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    try:
        config = _hub_config(Path(args.config).resolve())
        environment = dict.get(config.Spawner, "environment") or {}
        callback = environment.get(HUB_CALLBACK_ENV)
        if not callback:
            raise ConfigurationError(
                "jupyterhub_config.py",
                "does not call configure_hub(c)",
                "Add `from chat_oauth2_nb.hub import configure_hub; configure_hub(c, "
                "providers=...)` at its end.",
            )
        # References resolve as the service resolves them: its variables, then this shell's.
        environ = {**os.environ, **_service_environment(config)}
        overridden = overridden_server_scopes(config)
        if overridden is not None:
            print(f"error: {overridden}", file=sys.stderr)
        declared = resolve_declarations(
            _declarations(config, args.providers_file),
            environ,
            where=HUB_PROVIDERS,
            holder="JupyterHub",
        )
        results = check_declared(declared, callback, timeout=args.timeout)
    except OAuth2Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for alias, redirect, report in results:
        print(f"== {alias} ==")
        print(f"Register exactly this redirect URI at the provider: {redirect}")
        print(report)
        print()
    return 0 if overridden is None and all(report.ok for _, _, report in results) else 1
