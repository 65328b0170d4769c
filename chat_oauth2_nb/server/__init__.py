"""The redirect's landing place: the jupyter-server extension and the loopback server.

Nothing here imports tornado at import time; ``app`` and ``handlers`` do, and only the
Jupyter server loads them.
"""
