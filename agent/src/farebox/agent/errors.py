"""The errors of farebox.agent, with one root.

    AgentError                    anything this package raises on purpose
    ├── ConfigError               the configuration is unusable; lists every problem (exit 78)
    └── StoreError                the state database cannot be used as it stands
        ├── JournalUnavailableError  a record could not be made durable (disk full, I/O
        │                            error, database locked past the bound): out of service
        ├── WrongDeviceError      the database belongs to another device id
        └── CacheError            a package or cache that cannot be applied or loaded
            └── FullPackageNeededError  a delta that does not fit: the old state stays in
                                        force and the sync must fetch a full package
    └── SyncError                 talking to the sync server failed
        ├── ServerUnavailableError  no answer, 429, 5xx, a stale or replayed request, an
        │                           answer to a batch outside the protocol: retried with
        │                           backoff and full jitter
        ├── BatchTooLargeError    413: the uploader sends smaller batches
        ├── DeviceRefusedError    401 unknown device, revoked, bad or missing signature:
        │                         syncing stops until an operator acts
        ├── ServerRejectedError   400 malformed or unsupported_version (uploads halt), or
        │                         an answer a poll or a heartbeat cannot use
        └── EnrollmentError       enrollment refused, or the device is enrolled already

Readers never raise into the agent: they report their health and retry (see
farebox.agent.readers.base). A denied tap is never an exception either: `decide` returns
it as a `Decision` value.
"""

from __future__ import annotations

from collections.abc import Iterable


class AgentError(Exception):
    """Root of every error farebox.agent raises on purpose."""


class ConfigError(AgentError):
    """A configuration that cannot be used; `problems` lists every one found."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("bad configuration:\n" + "\n".join(f"  - {p}" for p in self.problems))


class StoreError(AgentError):
    """The state database cannot be used as it stands."""


class JournalUnavailableError(StoreError):
    """A record could not be committed; the validator must stop accepting taps."""


class WrongDeviceError(StoreError):
    """The state database was made for another device."""


class CacheError(StoreError):
    """A package or a cached state that cannot be applied or loaded."""


class FullPackageNeededError(CacheError):
    """A delta whose base or resulting checksum disagrees; fetch a full package."""


class SyncError(AgentError):
    """Talking to the sync server failed."""


class ServerUnavailableError(SyncError):
    """No answer, or an answer that says to try again later; retried with backoff."""


class BatchTooLargeError(SyncError):
    """The server's body limit was exceeded (413); send fewer records at a time."""


class DeviceRefusedError(SyncError):
    """The server does not accept this device's requests (unknown, revoked, bad signature)."""


class ServerRejectedError(SyncError):
    """The server refused a request as malformed, or answered a poll outside the protocol."""


class EnrollmentError(SyncError):
    """The enrollment was refused, or the device is already enrolled."""
