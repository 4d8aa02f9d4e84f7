"""A private network for the simulated pods: their IPs are real, local addresses.

In a cluster, Prometheus finds a pod through the Service's Endpoints and scrapes it at the pod's
IP and container port. kwok gives simulated pods IPs from ``POD_CIDR``; the API server refuses
loopback addresses in Endpoints, so the pods cannot simply live on 127.0.0.1. Instead the process
moves into a network namespace of its own (with a user namespace when not root, so no privilege
is needed) in which the whole ``POD_CIDR`` is a local route on the loopback device ("AnyIP"): the
backing binds each pod's engine and gateway to the pod's own IP, and Prometheus reaches them
there. Nothing in that namespace reaches, or is reachable from, any other network: the
addresses exist only inside it, the way the workplace's network rules ask.

It must run before the process starts threads (a user namespace needs a single-threaded
caller); every process started afterwards (API server, kwok, Prometheus, simulators) inherits it.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import threading

POD_CIDR = "10.244.0.0/16"
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
_ENV = "LLMOP_PRIVATE_NETWORK"


class NetnsError(RuntimeError):
    """The private network could not be made; the message says why."""


def in_private_network() -> bool:
    return os.environ.get(_ENV) == POD_CIDR


def enter_private_network() -> None:
    """Move this process into its own network namespace with ``POD_CIDR`` local on ``lo``.

    Idempotent. Raises NetnsError with the reason when the kernel or the tools refuse.
    """
    if in_private_network():
        return
    ip = shutil.which("ip") or ("/usr/sbin/ip" if os.access("/usr/sbin/ip", os.X_OK) else None)
    if ip is None:
        raise NetnsError("the `ip` command (iproute2) is missing")
    if threading.active_count() > 1:
        raise NetnsError("a network namespace must be entered before any thread starts")
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNET if os.geteuid() == 0 else CLONE_NEWUSER | CLONE_NEWNET
    if libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise NetnsError(
            f"unshare(network namespace) failed: {os.strerror(err)}"
            + ("" if os.geteuid() == 0 else " (are unprivileged user namespaces disabled?)")
        )
    if flags & CLONE_NEWUSER:  # become root of the new user namespace, as `unshare -r` does
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"0 {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"0 {gid} 1")
    for args in (
        ["link", "set", "lo", "up"],
        ["route", "add", "local", POD_CIDR, "dev", "lo"],
    ):
        out = subprocess.run([ip, *args], capture_output=True, text=True)
        if out.returncode != 0:
            raise NetnsError(f"ip {' '.join(args)}: {out.stderr.strip()}")
    os.environ[_ENV] = POD_CIDR
