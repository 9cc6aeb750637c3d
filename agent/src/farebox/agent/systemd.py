"""systemd notifications (sd_notify) over $NOTIFY_SOCKET, without any extra dependency.

A `Type=notify` unit waits for READY=1; with `WatchdogSec=` it expects WATCHDOG=1 at
least that often and restarts the agent otherwise. The runtime pings only from its tap
loop's heartbeat, so a stuck tap loop stops the pings and systemd restarts the agent.
Outside systemd (no $NOTIFY_SOCKET) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from farebox.agent import environment

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages; silent if not started by systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get(environment.NOTIFY_SOCKET)
        # An address starting with '@' is in the Linux abstract namespace.
        if address is not None and address.startswith("@"):
            address = "\0" + address[1:]
        self._address = address
        usec = environ.get(environment.WATCHDOG_USEC, "")
        self.watchdog_s: float | None = int(usec) / 1e6 if usec.isdigit() and int(usec) else None

    def notify(self, *fields: str) -> None:
        if self._address is None:
            return
        message = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self._address)
        except OSError as error:
            # Losing a notification must not take the validator down; systemd will say so.
            log.warning("sd_notify to %s failed: %s", self._address, error)

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")
