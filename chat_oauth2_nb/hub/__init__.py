"""JupyterHub: one redirect URI for the whole hub.

``configure_hub(c)`` in ``jupyterhub_config.py`` registers the router service, lets every
user reach it, and tells every spawned server the hub-wide redirect base. The router
(``python -m chat_oauth2_nb.hub``) logs the browser in through the hub and sends the
provider's redirect on to that browser's own server, which finishes the flow. Core modules
never import this package; importing it does not import JupyterHub.
"""

from __future__ import annotations

from .config import SERVICE_NAME, configure_hub

__all__ = ["SERVICE_NAME", "configure_hub"]
