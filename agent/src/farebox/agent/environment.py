"""Every environment variable the agent reads, as a documented constant.

Nothing else in farebox.agent names an environment variable. docs/agent.md lists each
one, and a test checks that the list and this module agree.
"""

from __future__ import annotations

FAREBOX_AGENT_CONFIG = "FAREBOX_AGENT_CONFIG"
"""Path of the TOML config file when `--config` is not given."""

FAREBOX_AGENT_DEVICE_ID = "FAREBOX_AGENT_DEVICE_ID"
"""Overrides `device.id`."""

FAREBOX_AGENT_STATE_DIR = "FAREBOX_AGENT_STATE_DIR"
"""Overrides `state.directory`."""

FAREBOX_AGENT_ROUTE = "FAREBOX_AGENT_ROUTE"
"""Overrides `location.route` at start (a driver's later route change is an event)."""

FAREBOX_AGENT_FEEDBACK = "FAREBOX_AGENT_FEEDBACK"
"""Overrides `feedback.kind` (console, gpio or none)."""

FAREBOX_AGENT_LOG_LEVEL = "FAREBOX_AGENT_LOG_LEVEL"
"""Overrides `log.level` (DEBUG, INFO, WARNING, ERROR)."""

FAREBOX_AGENT_SERVER = "FAREBOX_AGENT_SERVER"
"""Overrides `sync.server`, the sync server's base URL (the enrolled one by default)."""

STATE_DIRECTORY = "STATE_DIRECTORY"
"""Set by systemd from `StateDirectory=`; used when `state.directory` is not configured."""

NOTIFY_SOCKET = "NOTIFY_SOCKET"
"""Set by systemd for a `Type=notify` service: where READY and WATCHDOG are sent."""

WATCHDOG_USEC = "WATCHDOG_USEC"
"""Set by systemd from `WatchdogSec=`: the agent pings at a third of it."""

OVERRIDES: dict[str, tuple[str, str]] = {
    FAREBOX_AGENT_DEVICE_ID: ("device", "id"),
    FAREBOX_AGENT_STATE_DIR: ("state", "directory"),
    FAREBOX_AGENT_ROUTE: ("location", "route"),
    FAREBOX_AGENT_FEEDBACK: ("feedback", "kind"),
    FAREBOX_AGENT_LOG_LEVEL: ("log", "level"),
    FAREBOX_AGENT_SERVER: ("sync", "server"),
}
"""Which config key each override variable replaces."""

ALL = (
    FAREBOX_AGENT_CONFIG,
    *OVERRIDES,
    STATE_DIRECTORY,
    NOTIFY_SOCKET,
    WATCHDOG_USEC,
)
