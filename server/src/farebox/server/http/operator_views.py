"""The operator API's JSON shapes: plain functions from the cores' values to documents.

Money is always integer minor units beside its currency, never a float; times are UTC
milliseconds like everywhere else in farebox.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from farebox.protocol.heartbeat import Heartbeat
from farebox.protocol.money import Money, minor_unit_exponent
from farebox.server.ledger.accounts import AccountState
from farebox.server.ledger.stoplist import Head
from farebox.server.ledger.transfers import Entry, Receipt
from farebox.server.sync.devices import Device
from farebox.server.sync.reports import DeviceStatus, Publication, SyncLag, TicketAlert

Document = dict[str, Any]


def heartbeat(beat: Heartbeat, received_ms: int | None) -> Document:
    return {
        "received_ms": received_ms,
        "time_ms": beat.time_ms,
        "versions": {kind.value: version for kind, version in beat.versions.items()},
        "journal_depth": beat.journal_depth,
        "oldest_unsynced_ms": beat.oldest_unsynced_ms,
        "clock_offset_ms": beat.clock_offset_ms,
        "disk_free_bytes": beat.disk_free_bytes,
        "readers": dict(beat.readers),
    }


def device(found: Device) -> Document:
    return {
        "id": found.id,
        "kind": found.kind.value,
        "key_id": found.key.key_id.hex(),
        "enrolled_ms": found.enrolled_ms,
        "cursor": found.cursor.seq,
        "synced_ms": found.synced_ms,
        "refusals": found.refusals,
        "revoked": found.revoked,
        "revoked_ms": found.revoked_ms,
    }


def device_status(status: DeviceStatus) -> Document:
    beat = status.heartbeat
    return {
        **device(status.device),
        "heartbeat": None if beat is None else heartbeat(beat, status.heartbeat_ms),
    }


def account(state: AccountState, blocks: Sequence[tuple[str, str | None]]) -> Document:
    return {
        "account": state.account.id,
        "currency": state.account.currency,
        "balance": state.posted,
        "available": state.available.minor,
        "held": state.pending_debits,
        "credit_limit": state.account.credit_limit,
        "category": state.account.category,
        "blocks": block_list(blocks),
    }


def block_list(blocks: Sequence[tuple[str, str | None]]) -> list[Document]:
    return [{"reason": reason, "note": note} for reason, note in blocks]


def statement_line(account_id: str, entry: Entry) -> Document:
    """One transfer as the account sees it: credits to it positive, debits negative."""
    t = entry.transfer
    incoming = t.credit == account_id
    return {
        "id": entry.id,
        "posted_ms": entry.posted_ms,
        "event_ms": t.event_ms,
        "key": t.key,
        "kind": t.kind.value,
        "phase": t.phase.value,
        "amount": t.amount.minor if incoming else -t.amount.minor,
        "counterpart": t.debit if incoming else t.credit,
        "fare_day": None if t.fare_day is None else t.fare_day.isoformat(),
    }


def receipt(found: Receipt, amount: Money) -> Document:
    return {
        "transfer": found.id,
        "key": found.key,
        "posted_ms": found.posted_ms,
        "fresh": found.fresh,
        "amount": amount.minor,
        "currency": amount.currency,
    }


def stoplist(head: Head, size: int) -> Document:
    return {"version": head.version, "checksum": head.checksum.hex(), "size": size}


def publication(published: Publication) -> Document:
    return {
        "version": published.version,
        "created_ms": published.created_ms,
        "bytes": published.size,
        "checksum": published.checksum.hex(),
    }


def revenue_line(account_id: str, amount: Money) -> Document:
    # Revenue account ids are `revenue:<currency>:<carrier>:<route>` (ledger.accounts).
    _, _, carrier, route = account_id.split(":", 3)
    return {
        "carrier": carrier,
        "route": route,
        "amount": amount.minor,
        "currency": amount.currency,
        "exponent": minor_unit_exponent(amount.currency),  # digits after the point
    }


def sync_lag(lag: SyncLag) -> Document:
    return {
        "device": lag.device,
        "synced_ms": lag.synced_ms,
        "lag_s": None if lag.lag_ms is None else lag.lag_ms / 1000,
        "journal_depth": lag.journal_depth,
    }


def ticket_alert(alert: TicketAlert) -> Document:
    return {
        "token": alert.token,
        "device": alert.device,
        "seq": alert.seq,
        "used_ms": alert.used_ms,
        "first_device": alert.first_device,
        "first_seq": alert.first_seq,
    }
