"""``mode="auto"``: where the browser is, read from real environments, and the way chosen.

Each row is an environment as the place really sets it (the variables named in
chat_oauth2_nb/environment.py with their sources) plus what the filesystem probes would
find, the expected answer to "is the browser on this machine?", and the way the kit takes
with and without a provider device endpoint. The environments include the ordinary noise
(PATH, HOME, LANG…) so a rule that keys on something generic would show up here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest

from chat_oauth2_nb.kernel.environment import Probes, Where, browser_location, choose_way

BASE = {"PATH": "/usr/bin:/bin", "HOME": "/home/ada", "LANG": "C.UTF-8", "SHELL": "/bin/bash"}
SSH = {"SSH_CONNECTION": "203.0.113.7 51234 10.0.0.5 22", "SSH_CLIENT": "203.0.113.7 51234 22"}
VSCODE_SERVER = {
    "VSCODE_AGENT_FOLDER": "/home/ada/.vscode-server",
    "VSCODE_IPC_HOOK_CLI": "/run/user/1000/vscode-ipc-1234.sock",
}


@dataclass(frozen=True)
class Case:
    """One environment and what the kit should make of it."""

    name: str
    env: dict[str, str]
    local: bool | None
    place: str
    evidence: str  # a word the reason must name, so the person can check it
    way_with_device: str
    way_without_device: str
    probes: Probes = field(default_factory=Probes)


CASES = [
    Case(
        "colab",
        {**BASE, "COLAB_RELEASE_TAG": "release-colab_20260101-060000_RC00", "COLAB_GPU": ""},
        False,
        "Google Colab",
        "COLAB_RELEASE_TAG",
        "device",
        "paste",
        Probes(container="/.dockerenv exists", colab_module=True),
    ),
    Case(
        # Colab without a GPU: COLAB_GPU is set but empty; presence is what counts.
        "colab-gpu-empty",
        {**BASE, "COLAB_GPU": ""},
        False,
        "Google Colab",
        "COLAB_GPU",
        "device",
        "paste",
    ),
    Case(
        "colab-module-only",
        dict(BASE),
        False,
        "Google Colab",
        "google.colab",
        "device",
        "paste",
        Probes(colab_module=True),
    ),
    Case(
        "binder",
        {
            **BASE,
            "BINDER_LAUNCH_HOST": "https://mybinder.org/",
            "BINDER_REPO_URL": "https://github.com/org/repo",
            "JUPYTERHUB_API_URL": "http://hub:8081/hub/api",
            "JUPYTERHUB_SERVICE_PREFIX": "/user/org-repo-abc/",
            "KUBERNETES_SERVICE_HOST": "10.0.0.1",
        },
        False,
        "Binder",
        "BINDER_LAUNCH_HOST",
        "device",
        "paste",
        Probes(container="/proc/1/cgroup mentions kubepods"),
    ),
    Case(
        "codespaces",
        {
            **BASE,
            **VSCODE_SERVER,
            "CODESPACES": "true",
            "CODESPACE_NAME": "octocat-literate-space-parakeet-mld5",
            "REMOTE_CONTAINERS": "true",
        },
        False,
        "GitHub Codespaces",
        "CODESPACES",
        "device",
        "paste",
        Probes(container="/.dockerenv exists"),
    ),
    Case(
        "vscode-remote-ssh",
        {**BASE, **SSH, **VSCODE_SERVER},
        False,
        "VS Code remote (SSH)",
        "SSH_CONNECTION",
        "device",
        "paste",
    ),
    Case(
        "vscode-dev-container",
        {**BASE, **VSCODE_SERVER, "REMOTE_CONTAINERS": "true"},
        False,
        "VS Code Dev Container",
        "REMOTE_CONTAINERS",
        "device",
        "paste",
        Probes(container="/.dockerenv exists"),
    ),
    Case(
        "vscode-remote-tunnel-in-container",
        {**BASE, "VSCODE_AGENT_FOLDER": "/root/.vscode-server"},
        False,
        "VS Code remote (container)",
        "VSCODE_AGENT_FOLDER",
        "device",
        "paste",
        Probes(container="/.dockerenv exists"),
    ),
    Case(
        # Windows' browser reaches WSL's localhost: learn.microsoft.com/windows/wsl/networking.
        "vscode-wsl",
        {
            **BASE,
            **VSCODE_SERVER,
            "WSL_DISTRO_NAME": "Ubuntu-24.04",
            "WSL_INTEROP": "/run/WSL/1_interop",
        },
        True,
        "WSL",
        "WSL_DISTRO_NAME",
        "loopback",
        "loopback",
        Probes(wsl_kernel=True),
    ),
    Case(
        "wsl-terminal",
        {**BASE, "WSL_DISTRO_NAME": "Debian"},
        True,
        "WSL",
        "WSL_DISTRO_NAME",
        "loopback",
        "loopback",
        Probes(wsl_kernel=True),
    ),
    Case(
        # Docker Desktop's containers run on the WSL kernel too: the container wins.
        "docker-desktop-container-on-wsl-kernel",
        dict(BASE),
        False,
        "a container",
        "/.dockerenv",
        "device",
        "paste",
        Probes(container="/.dockerenv exists", wsl_kernel=True),
    ),
    Case(
        # Someone ssh-ing into a WSL distro from another machine is remote.
        "ssh-into-wsl",
        {**BASE, **SSH},
        False,
        "SSH session",
        "SSH_CONNECTION",
        "device",
        "paste",
        Probes(wsl_kernel=True),
    ),
    Case(
        "plain-ssh",
        {**BASE, **SSH, "SSH_TTY": "/dev/pts/3"},
        False,
        "SSH session",
        "SSH_CONNECTION",
        "device",
        "paste",
    ),
    Case(
        "ssh-x-forwarding",
        {**BASE, **SSH, "DISPLAY": "localhost:10.0"},
        True,
        "SSH session with X forwarding",
        "DISPLAY",
        "loopback",
        "loopback",
    ),
    Case(
        # DISPLAY=:0 over SSH is the remote machine's own screen, not the person's.
        "ssh-display-of-remote-screen",
        {**BASE, **SSH, "DISPLAY": ":0"},
        False,
        "SSH session",
        "SSH_CONNECTION",
        "device",
        "paste",
    ),
    Case(
        "docker",
        {**BASE, "HOSTNAME": "3f4e5d6c7b8a"},
        False,
        "a container",
        "/.dockerenv",
        "device",
        "paste",
        Probes(container="/.dockerenv exists"),
    ),
    Case(
        "podman-env-only",
        {**BASE, "container": "podman"},
        False,
        "a container",
        "container=podman",
        "device",
        "paste",
    ),
    Case(
        "kubernetes",
        {**BASE, "KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"},
        False,
        "a Kubernetes pod",
        "KUBERNETES_SERVICE_HOST",
        "device",
        "paste",
        Probes(container="/proc/1/cgroup mentions kubepods"),
    ),
    Case(
        "jupyterhub",
        {
            **BASE,
            "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api",
            "JUPYTERHUB_SERVICE_PREFIX": "/user/ada/",
            "JUPYTERHUB_USER": "ada",
        },
        False,
        "JupyterHub",
        "JUPYTERHUB_API_URL",
        "device",
        "paste",
    ),
    Case(
        "kaggle",
        {
            **BASE,
            "KAGGLE_KERNEL_RUN_TYPE": "Interactive",
            "KAGGLE_URL_BASE": "https://www.kaggle.com",
        },
        False,
        "Kaggle",
        "KAGGLE_KERNEL_RUN_TYPE",
        "device",
        "paste",
        Probes(container="/.dockerenv exists"),
    ),
    Case(
        "linux-desktop",
        {**BASE, "DISPLAY": ":0", "XDG_SESSION_TYPE": "x11"},
        True,
        "this machine",
        "DISPLAY",
        "loopback",
        "loopback",
    ),
    Case(
        "wayland-desktop",
        {**BASE, "WAYLAND_DISPLAY": "wayland-0"},
        True,
        "this machine",
        "WAYLAND_DISPLAY",
        "loopback",
        "loopback",
    ),
    Case(
        # A local VS Code (no remote markers) on a Mac: VSCODE_PID etc. don't mean remote.
        "macos-local-vscode",
        {**BASE, "TERM_PROGRAM": "vscode", "VSCODE_PID": "4242"},
        True,
        "this machine",
        "darwin",
        "loopback",
        "loopback",
        Probes(platform="darwin"),
    ),
    Case(
        "windows",
        {"PATH": r"C:\Windows", "USERPROFILE": r"C:\Users\ada"},
        True,
        "this machine",
        "win32",
        "loopback",
        "loopback",
        Probes(platform="win32"),
    ),
    Case(
        "headless-linux",
        dict(BASE),
        None,
        "a headless machine",
        "no display",
        "loopback",
        "loopback",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_where_the_browser_is(case: Case) -> None:
    """Each environment is placed right, and the reason names the evidence."""
    where = browser_location(case.env, probes=case.probes)
    assert (where.local, where.place) == (case.local, case.place)
    assert case.evidence in where.reason


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_way_auto_takes(case: Case) -> None:
    """With no redirect_uri and no extension, the way follows the place and the provider."""
    where = browser_location(case.env, probes=case.probes)
    for device, expected in ((True, case.way_with_device), (False, case.way_without_device)):
        way, reason = choose_way(
            explicit_redirect_uri=False,
            extension_callback=False,
            where=where,
            device_endpoint=device,
        )
        assert way == expected, reason
        # The sentence names the place's evidence, and for remote ways what the person does.
        assert case.evidence in reason
        if way == "device":
            assert "type the code" in reason
        if way == "paste":
            assert "paste that address" in reason
        if where.local is None:
            assert "assumes" in reason and "mode='device'" in reason


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_jupyter_route_wins_everywhere(case: Case) -> None:
    """An explicit redirect_uri or the server extension beats every place rule."""
    where = browser_location(case.env, probes=case.probes)
    way, reason = choose_way(
        explicit_redirect_uri=True, extension_callback=True, where=where, device_endpoint=True
    )
    assert way == "jupyter" and "redirect_uri" in reason
    way, reason = choose_way(
        explicit_redirect_uri=False, extension_callback=True, where=where, device_endpoint=True
    )
    assert way == "jupyter" and "extension" in reason


def test_empty_values_are_not_a_session() -> None:
    """An exported-but-empty SSH_CONNECTION or DISPLAY is no evidence either way."""
    where = browser_location({**BASE, "SSH_CONNECTION": "", "DISPLAY": ""}, probes=Probes())
    assert where.local is None


def test_codespaces_false_is_not_codespaces() -> None:
    """CODESPACES is documented as "true"; any other value doesn't make a codespace."""
    where = browser_location({**BASE, "CODESPACES": "false", "DISPLAY": ":1"}, probes=Probes())
    assert (where.local, where.place) == (True, "this machine")


def test_real_probes_and_environment_on_this_machine() -> None:
    """Without arguments it reads this machine and still answers in one sentence."""
    where = browser_location()
    assert isinstance(where, Where)
    assert where.reason and "\n" not in where.reason
    assert where == browser_location(os.environ, probes=Probes.detect())


def test_the_module_needs_only_the_standard_library() -> None:
    """The kernel can run it before anything else loads: stdlib imports only."""
    import ast
    import sys
    from pathlib import Path

    import chat_oauth2_nb.kernel.environment as module

    tree = ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))
    roots = {
        (alias.name if isinstance(node, ast.Import) else (node.module or "")).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert roots <= set(sys.stdlib_module_names) | {"__future__"}, roots


def test_colab_probe_does_not_import_colab() -> None:
    """Probing for google.colab must not import it (importing Colab's module has effects)."""
    import sys

    Probes.detect()
    assert "google.colab" not in sys.modules
