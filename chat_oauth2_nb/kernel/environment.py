"""Where the person's browser is, read from the kernel's environment, and which way to authorize.

``mode="auto"`` needs one fact the kernel cannot observe directly: is the browser that will
open the provider's page on this machine, so that a redirect to ``127.0.0.1`` reaches a
listener here? Hosted notebooks, remote editors, SSH sessions and containers each leave
marks in the environment; :func:`browser_location` reads them (pure: the environment and
the filesystem probes are arguments) and :func:`choose_way` turns the answer into a way.

Every signal below names its source. Checks go from the most specific place to the least:
a hosted notebook (Colab, Binder, Codespaces) is also a container and often an SSH-less
Linux box, so it must win over the generic container and "headless" rules.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["Probes", "Way", "Where", "browser_location", "choose_way"]

Way = Literal["jupyter", "loopback", "device", "paste"]


@dataclass(frozen=True)
class Where:
    """Whether the browser is on the kernel's machine (None: can't tell), the place, and why."""

    local: bool | None
    place: str
    reason: str


@dataclass(frozen=True)
class Probes:
    """What the filesystem and interpreter say, apart from environment variables."""

    #: A phrase naming container evidence ("/.dockerenv exists"), or None.
    container: str | None = None
    #: The Linux kernel is Microsoft's WSL kernel (/proc/version mentions it).
    wsl_kernel: bool = False
    #: ``google.colab`` is importable (or already imported) in this interpreter.
    colab_module: bool = False
    #: ``sys.platform`` of the kernel.
    platform: str = "linux"

    @classmethod
    def detect(cls) -> Probes:
        """Read the real machine: container files, the kernel's name, Colab's module."""
        return cls(
            container=_container_evidence(),
            wsl_kernel=_wsl_kernel(),
            colab_module=_colab_module(),
            platform=sys.platform,
        )


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _container_evidence() -> str | None:
    # Docker creates /.dockerenv in every container's root; Podman creates
    # /run/.containerenv (containers/podman#11836 discusses both as its interface).
    for marker in ("/.dockerenv", "/run/.containerenv"):
        if Path(marker).exists():
            return f"{marker} exists"
    # cgroup v1 paths name the runtime; under cgroup v2 with a private cgroup namespace
    # /proc/1/cgroup is just "0::/", so this only adds to the marker files above.
    cgroup = _read("/proc/1/cgroup")
    for word in ("kubepods", "docker", "containerd", "libpod", "lxc"):
        if word in cgroup:
            return f"/proc/1/cgroup mentions {word}"
    return None


def _wsl_kernel() -> bool:
    # WSL kernels report "microsoft" in their release (e.g. 5.15.90-microsoft-standard-WSL2);
    # this is what sindresorhus/is-wsl reads too.
    return "microsoft" in _read("/proc/version").lower()


def _colab_module() -> bool:
    if "google.colab" in sys.modules:
        return True
    # find_spec on a submodule imports the parent namespace package ("google", which
    # protobuf also provides) but not google.colab itself; a missing parent raises.
    try:
        return importlib.util.find_spec("google.colab") is not None
    except (ImportError, ValueError):
        return False


def _has(env: Mapping[str, str], *names: str) -> str | None:
    """The first of ``names`` present in ``env`` (an empty value counts: presence is the mark)."""
    return next((name for name in names if name in env), None)


def _nonempty(env: Mapping[str, str], *names: str) -> str | None:
    return next((name for name in names if env.get(name)), None)


def _is_set(name: str) -> str:
    return f"{name} is set"


def browser_location(
    environ: Mapping[str, str] | None = None, *, probes: Probes | None = None
) -> Where:
    """Decide from the environment whether the person's browser is on the kernel's machine."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    probe = Probes.detect() if probes is None else probes
    # VS Code's remote extension host sets VSCODE_IPC_HOOK_CLI only when the window is
    # remote (extHostExtensionService: `if (initData.remote.isRemote) process.env[...]`),
    # and kernels it starts inherit it; its server start scripts export
    # VSCODE_AGENT_FOLDER (~/.vscode-server). A local VS Code sets neither.
    vscode = _nonempty(env, "VSCODE_IPC_HOOK_CLI", "VSCODE_AGENT_FOLDER")
    # From the most specific place to the least (see the module's docstring).
    return (
        _hosted_notebook(env, probe)
        or _remote_session(env, probe, vscode)
        or _server_or_container(env, probe)
        or _desktop_or_headless(env, probe)
    )


def _hosted_notebook(env: Mapping[str, str], probe: Probes) -> Where | None:
    """Kaggle, Colab, Binder, Codespaces: the browser is always elsewhere."""
    # Kaggle: its kernels carry KAGGLE_KERNEL_RUN_TYPE / KAGGLE_URL_BASE (what public
    # detection code reads; no Kaggle page documents them). Both Kaggle and Colab are
    # hosted, so their order only decides which name is shown.
    if name := _has(env, "KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_URL_BASE"):
        return Where(False, "Kaggle", _is_set(name))
    # Colab: its runtimes set COLAB_RELEASE_TAG, and COLAB_GPU is set but may be empty on
    # CPU runtimes, so presence is the mark (bitcoinops/taproot-workshop#203 moved to
    # these for that reason); google.colab is installed only there.
    if name := _has(env, "COLAB_RELEASE_TAG", "COLAB_GPU", "COLAB_JUPYTER_IP"):
        return Where(False, "Google Colab", _is_set(name))
    if probe.colab_module:
        return Where(False, "Google Colab", "the google.colab module is installed")
    # Binder: BinderSpawnerMixin.get_env (jupyterhub/binderhub, binderspawner_mixin.py)
    # sets these in the user's pod. Before JupyterHub: a Binder is a hub too.
    if name := _has(
        env, "BINDER_LAUNCH_HOST", "BINDER_REPO_URL", "BINDER_REF_URL", "BINDER_REQUEST"
    ):
        return Where(False, "Binder", _is_set(name))
    # Codespaces: "CODESPACES: Always true while in a codespace", plus CODESPACE_NAME
    # (docs.github.com, "Default environment variables for your codespace"). Before the
    # dev-container and VS Code rules: a codespace is a dev container run by VS Code.
    if env.get("CODESPACES") == "true":
        return Where(False, "GitHub Codespaces", "CODESPACES is true")
    if name := _has(env, "CODESPACE_NAME"):
        return Where(False, "GitHub Codespaces", _is_set(name))
    return None


def _remote_session(env: Mapping[str, str], probe: Probes, vscode: str | None) -> Where | None:
    """A dev container, an SSH session, WSL, or a remote VS Code window."""
    # Dev Containers sets REMOTE_CONTAINERS=true (microsoft/vscode-remote-release#3517,
    # #3734); older versions only REMOTE_CONTAINERS_IPC / VSCODE_REMOTE_CONTAINERS_SESSION.
    if name := _has(
        env, "REMOTE_CONTAINERS", "REMOTE_CONTAINERS_IPC", "VSCODE_REMOTE_CONTAINERS_SESSION"
    ):
        return Where(False, "VS Code Dev Container", _is_set(name))
    # sshd sets SSH_CONNECTION and SSH_CLIENT for every session, SSH_TTY with a pty
    # (ssh(1), ENVIRONMENT). Before WSL: someone may ssh into a WSL distro from elsewhere.
    if ssh := _nonempty(env, "SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY"):
        return _ssh_session(env, ssh, vscode)
    # WSL: Windows' browser reaches servers in the distro at localhost ("Accessing Linux
    # networking apps from Windows (localhost)", learn.microsoft.com/windows/wsl/networking;
    # .wslconfig localhostForwarding defaults to true, and mirrored mode shares 127.0.0.1).
    # WSL sets WSL_DISTRO_NAME and WSL_INTEROP in its sessions.
    if name := _has(env, "WSL_DISTRO_NAME", "WSL_INTEROP"):
        via = f" (VS Code connected through {vscode})" if vscode else ""
        return Where(True, "WSL", f"{name} is set{via}; Windows forwards localhost into WSL")
    # A container under Docker Desktop also runs on the WSL kernel, so the kernel's name
    # alone counts only when nothing says "container".
    if probe.wsl_kernel and probe.container is None:
        return Where(
            True,
            "WSL",
            "the Linux kernel is Microsoft's WSL kernel; Windows forwards localhost into WSL",
        )
    if vscode:
        if probe.container:
            return Where(
                False, "VS Code remote (container)", f"{vscode} is set and {probe.container}"
            )
        return Where(False, "VS Code remote", _is_set(vscode))
    return None


def _ssh_session(env: Mapping[str, str], ssh: str, vscode: str | None) -> Where:
    """An SSH session: remote, unless X forwarding shows a browser opened here on your screen."""
    if vscode:
        return Where(False, "VS Code remote (SSH)", f"{ssh} and {vscode} are set")
    display = env.get("DISPLAY", "")
    # X11 forwarding sets DISPLAY to a host-qualified display (localhost:10.0 with
    # sshd_config's defaults X11DisplayOffset 10, X11UseLocalhost yes): a browser
    # Python opens then runs here and shows on the person's screen. ":0" is the
    # remote machine's own screen, which the person at the SSH client can't see.
    if display and not display.startswith(":"):
        return Where(
            True,
            "SSH session with X forwarding",
            f"{ssh} is set and DISPLAY={display} forwards a browser opened here to your screen",
        )
    return Where(False, "SSH session", _is_set(ssh))


def _server_or_container(env: Mapping[str, str], probe: Probes) -> Where | None:
    """A JupyterHub server, a Kubernetes pod or another container: people browse from elsewhere."""
    # JupyterHub's Spawner.get_env gives every single-user server JUPYTERHUB_API_URL and
    # JUPYTERHUB_SERVICE_PREFIX (jupyterhub/spawner.py); the hub serves people elsewhere.
    if name := _has(env, "JUPYTERHUB_API_URL", "JUPYTERHUB_SERVICE_PREFIX"):
        return Where(False, "JupyterHub", _is_set(name))
    # The kubelet gives every container the kubernetes service's address as
    # KUBERNETES_SERVICE_HOST (kubernetes.io, "Container Environment"; pkg/kubelet/envvars).
    if name := _has(env, "KUBERNETES_SERVICE_HOST"):
        return Where(False, "a Kubernetes pod", _is_set(name))
    if probe.container:
        return Where(False, "a container", probe.container)
    # systemd's Container Interface asks managers to set $container (podman sets
    # container=podman, systemd-nspawn its own name): systemd.io/CONTAINER_INTERFACE.
    if container := env.get("container"):
        return Where(False, "a container", f"container={container} is set")
    return None


def _desktop_or_headless(env: Mapping[str, str], probe: Probes) -> Where:
    """Nothing says remote: a desktop session, or a headless machine (can't tell)."""
    if probe.platform == "darwin" or probe.platform.startswith("win"):
        return Where(
            True, "this machine", f"a {probe.platform} desktop with no SSH or container marks"
        )
    if name := _nonempty(env, "DISPLAY", "WAYLAND_DISPLAY"):
        return Where(True, "this machine", f"{name} is set and nothing says remote")
    return Where(
        None,
        "a headless machine",
        "nothing names a hosted notebook, remote editor, SSH session or container, and no display is set",
    )


def choose_way(
    *, explicit_redirect_uri: bool, extension_callback: bool, where: Where, device_endpoint: bool
) -> tuple[Way, str]:
    """The way ``mode="auto"`` takes (jupyter, loopback, device or paste) and one sentence why."""
    if explicit_redirect_uri:
        return (
            "jupyter",
            "You set redirect_uri, so the provider sends the browser back to that address.",
        )
    if extension_callback:
        return (
            "jupyter",
            "The Jupyter server running this kernel has the chat_oauth2_nb extension, "
            "so the browser comes back to Jupyter's own callback page.",
        )
    if where.local is True:
        return (
            "loopback",
            f"The browser is on this machine ({where.place}: {where.reason}), "
            "so it comes back to a one-time listener on 127.0.0.1.",
        )
    if where.local is None:
        return (
            "loopback",
            f"Nothing shows the browser is elsewhere ({where.reason}), so this assumes it is "
            "on this machine and listens on 127.0.0.1; if the browser never comes back, "
            "use mode='device' or mode='paste'.",
        )
    if device_endpoint:
        return (
            "device",
            f"The browser is not on this machine ({where.place}: {where.reason}) and the "
            "provider offers device codes: you open a link on any device and type the code "
            "shown here.",
        )
    return (
        "paste",
        f"The browser is not on this machine ({where.place}: {where.reason}) and the "
        "provider has no device endpoint: you sign in, the browser ends on a 127.0.0.1 "
        "address that doesn't load, and you paste that address back here.",
    )
