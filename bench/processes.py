"""Child processes the workbench starts (database, latency proxy): shared lifecycle rules.

Standard library only: the latency proxy imports this as a plain script.

* :func:`is_loopback_host` — every server we start or target stays on this machine.
* :func:`child_preexec` — on Linux, the child gets SIGTERM when its parent dies
  (``PR_SET_PDEATHSIG``), so a killed harness leaves nothing behind.
* :func:`terminate` — SIGTERM, wait, then SIGKILL, also when Ctrl-C interrupts the wait.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import ipaddress
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
PR_SET_TIMERSLACK = 29


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1 (brackets allowed); no DNS lookups.

    Names other than ``localhost`` are refused rather than resolved: a resolver could map
    them anywhere, and nothing here may listen on or connect to another machine.
    """
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.cache
def libc_prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` on Linux, else None; loaded in the parent, never between fork and
    exec (``dlopen`` there could deadlock on a loader lock held by another thread)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


def _die_with_parent(prctl: Callable[..., int], parent_pid: int) -> None:  # pragma: no cover
    """In the child before exec: SIGTERM me when my parent dies; exit if it already has."""
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:
        os._exit(1)


def child_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` tying the child's life to this process, or None where unsupported.

    PR_SET_PDEATHSIG fires when the *thread* that forked exits, so it is only used from the
    main thread (a child started from a worker thread would die with that thread).
    """
    prctl = libc_prctl()
    if prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    return functools.partial(_die_with_parent, prctl, os.getpid())


def terminate(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    """SIGTERM, wait ``timeout`` s, then SIGKILL; returns the exit code. Never leaves it running,
    also when Ctrl-C interrupts the wait."""
    try:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
    return process.returncode
