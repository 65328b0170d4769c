"""``python -m chat_oauth2_nb.hub``: the router service, as JupyterHub starts it.

``python -m chat_oauth2_nb.hub check``: the administrator's diagnosis of every declared
provider (a separate process; the router itself never loads the client).
"""

import sys

if sys.argv[1:2] == ["check"]:
    from ..doctor.hubcheck import main as check

    sys.exit(check(sys.argv[2:]))

from .router import main

main()
