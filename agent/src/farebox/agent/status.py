"""What `farebox-agent status` reports, and the runtime file it reads from the agent.

The running agent writes `runtime.json` in its state directory (atomically) whenever its
service state or a reader's health changes; `status` reads that file and, read-only, the
state database, so it works whether or not the agent runs. docs/agent.md explains every
field.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from farebox.agent.config import AgentConfig
from farebox.agent.errors import StoreError
from farebox.agent.policy import assess_clock
from farebox.agent.store import journal
from farebox.agent.store.schema import MIGRATIONS, current_version
from farebox.agent.sync.enrollment import read_enrollment
from farebox.agent.sync.report import read_sync_report
from farebox.protocol.packages import PackageKind

RUNTIME_FILE = "runtime.json"
RUN_DIRECTORY = Path("/run/farebox-agent")
"""Where the runtime file goes while this directory exists (the unit's RuntimeDirectory=,
a tmpfs): a full SD card cannot keep the service state from being written there, and a
change of state costs the card no write. Else it goes to the state directory."""


@dataclass(frozen=True, slots=True)
class ReaderHealth:
    id: str
    state: str
    message: str


@dataclass(frozen=True, slots=True)
class RuntimeStatus:
    """The running agent's own view: service state, since when and why, reader health."""

    service: str
    since_ms: int
    message: str
    readers: tuple[ReaderHealth, ...]
    pid: int
    updated_ms: int


def runtime_directory(state_directory: Path) -> Path:
    """Where the runtime file of an agent with `state_directory` is (see RUN_DIRECTORY)."""
    return RUN_DIRECTORY if RUN_DIRECTORY.is_dir() else state_directory


def write_runtime(state_directory: Path, status: RuntimeStatus) -> None:
    """Replace the runtime file atomically, so `status` never reads half of one."""
    directory = runtime_directory(state_directory)
    temporary = directory / f".{RUNTIME_FILE}.tmp"
    temporary.write_text(json.dumps(asdict(status), sort_keys=True))
    temporary.replace(directory / RUNTIME_FILE)
    if directory != state_directory:  # one an earlier release left would mislead `status`
        (state_directory / RUNTIME_FILE).unlink(missing_ok=True)


def read_runtime(state_directory: Path) -> Mapping[str, object] | None:
    try:
        value = json.loads((runtime_directory(state_directory) / RUNTIME_FILE).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def service_state(runtime: Mapping[str, object] | None) -> object:
    """The service state the runtime file gives, `not running` if there is none or the
    process that wrote it is gone without saying it stopped (killed, crashed)."""
    if runtime is None:
        return "not running"
    state, pid = runtime.get("service"), runtime.get("pid")
    if state != "stopped" and not (isinstance(pid, int) and _alive(pid)):
        return "not running"
    return state


def _alive(pid: int) -> bool:
    if pid <= 0:  # 0 and below name process groups, not a process
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True  # it exists: another user's
    return True


def iso(time_ms: int | None) -> str | None:
    if time_ms is None:
        return None
    return datetime.fromtimestamp(time_ms / 1000, UTC).isoformat(timespec="milliseconds")


def gather(config: AgentConfig, now_ms: int) -> dict[str, object]:
    """Every status field, as plain values ready for JSON or text."""
    path = config.state.database
    report: dict[str, object] = {"device": config.device_id, "database": str(path)}
    runtime = read_runtime(config.state.directory)
    report["service"] = service_state(runtime)
    report["runtime"] = runtime
    report["sync"] = sync_status(config)
    if not path.exists():
        report["journal"] = None
        return report
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=2.0)
    try:
        schema = current_version(conn)
        if schema < len(MIGRATIONS):
            # Installed but not yet restarted: the running agent upgrades it when it starts.
            report["journal"] = None
            report["schema"] = {
                "found": schema,
                "expected": len(MIGRATIONS),
                "note": "the database is older than this agent: restart the agent"
                " (systemctl restart farebox-agent) to upgrade it",
            }
            return report
        held = journal.figures(conn, config.device_id)
        versions: dict[str, object] = {kind.value: None for kind in PackageKind}
        rows = conn.execute(
            "SELECT kind, version, applied_ms, confirmed_ms, length(payload) FROM caches"
        )
        stoplist_confirmed = None
        for kind, version, applied_ms, confirmed_ms, size in rows:
            entry: dict[str, object] = {"version": version, "applied": iso(applied_ms)}
            if kind == PackageKind.STOPLIST.value:
                stoplist_confirmed = confirmed_ms
                entry["confirmed"] = iso(confirmed_ms)
                entry["tokens"] = size // 8  # one 8-byte key per token
            versions[kind] = entry
    except sqlite3.Error as error:
        raise StoreError(f"cannot read {path}: {error}") from None
    finally:
        conn.close()
    policy = config.policy
    report.update(
        versions=versions,
        stoplist_stale=policy.stoplist_stale(stoplist_confirmed, now_ms),
        journal={
            "head_seq": held.head_seq,
            "acked_seq": held.acked_seq,
            "unsynced": held.unacked,
            "oldest_unsynced": iso(held.oldest_unacked_ms),
            "kept": held.kept,
        },
        last_sync=iso(held.last_sync_ms),
        clock={
            "now": iso(now_ms),
            "state": assess_clock(now_ms, held.clock_offset_ms, policy.max_drift_ms).value,
            "offset_ms": held.clock_offset_ms,
        },
        database_bytes=held.size_bytes,
        disk_free_bytes=shutil.disk_usage(config.state.directory).free,
    )
    return report


def sync_status(config: AgentConfig) -> dict[str, object]:
    """Enrolled or not, the server, and what the running (or last) sync reported."""
    directory = config.state.directory
    enrolled = read_enrollment(directory)
    kept = read_sync_report(directory) or {}
    server = config.sync.server or (None if enrolled is None else enrolled.server)
    last_error_ms = kept.get("last_error_ms")
    return {
        "enrolled": enrolled is not None,
        "server": server,
        "state": kept.get("state", "not started" if enrolled is not None else "not enrolled"),
        "halted": kept.get("halted"),
        "last_error": kept.get("last_error"),
        "last_error_at": iso(last_error_ms) if isinstance(last_error_ms, int) else None,
    }


def render(report: Mapping[str, object]) -> str:
    """The report as indented `key: value` lines for a terminal."""
    lines: list[str] = []

    def walk(value: object, indent: str) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                if isinstance(inner, Mapping | list):
                    lines.append(f"{indent}{key}:")
                    walk(inner, indent + "  ")
                else:
                    lines.append(f"{indent}{key}: {'-' if inner is None else inner}")
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, Mapping):
                    lines.append(f"{indent}- " + ", ".join(f"{k}={v}" for k, v in item.items()))
                else:
                    lines.append(f"{indent}- {item}")
        else:
            lines.append(f"{indent}{value}")

    walk(report, "")
    return "\n".join(lines)
