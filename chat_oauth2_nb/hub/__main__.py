"""``python -m chat_oauth2_nb.hub``: the router service, as JupyterHub starts it."""

from .router import main

main()
