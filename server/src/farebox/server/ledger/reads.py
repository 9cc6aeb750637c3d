"""Queries over the books, written once for both stores (see `store.Session`)."""

from __future__ import annotations

from datetime import date

from farebox.protocol.money import Money
from farebox.server.errors import LedgerError
from farebox.server.ledger.accounts import Account, AccountKind, AccountState
from farebox.server.ledger.settlement import DayState, DayTap
from farebox.server.ledger.stoplist import EMPTY_HEAD, Change, Delta, Head, net_delta
from farebox.server.ledger.store import TRANSFER_COLUMNS, Row, Session
from farebox.server.ledger.transfers import Entry, Phase, Transfer, TransferKind

_ENTRY = f"SELECT id, {', '.join(TRANSFER_COLUMNS)} FROM transfers"  # noqa: S608 (fixed names)
# A transfer moves posted balances when it is posted at once or posts a pending one.
MOVES = "phase IN ('single', 'post')"
_POSTED_MS = TRANSFER_COLUMNS.index("posted_ms")


def transfer_from_row(row: Row) -> Transfer:
    """The transfer a row of TRANSFER_COLUMNS stores."""
    (key, kind, phase, debit, credit, currency, amount, event_ms, _) = row[:9]
    (reference, fare_day, device, seq, stop, category, origin, timeout_ms) = row[9:]
    return Transfer(
        key=key,
        kind=TransferKind(kind),
        phase=Phase(phase),
        debit=debit,
        credit=credit,
        amount=Money(amount, currency),
        event_ms=event_ms,
        reference=reference,
        fare_day=date.fromisoformat(fare_day) if fare_day else None,
        device=device,
        seq=seq,
        stop=stop,
        category=category,
        origin=origin,
        timeout_ms=timeout_ms,
    )


def entry_from_row(row: Row) -> Entry:
    """The entry an `_ENTRY` row stores: its id, then TRANSFER_COLUMNS."""
    return Entry(row[0], row[1 + _POSTED_MS], transfer_from_row(row[1:]))


async def transfer(session: Session, key: str) -> Entry | None:
    rows = await session.fetch(f"{_ENTRY} WHERE key = $1", key)
    return entry_from_row(rows[0]) if rows else None


async def account_state(session: Session, account_id: str) -> AccountState | None:
    rows = await session.fetch(
        "SELECT id, kind, currency, credit_limit, category, posted, pending_debits,"
        " pending_credits FROM accounts WHERE id = $1",
        account_id,
    )
    if not rows:
        return None
    ident, kind, currency, limit, category, posted, pending_debits, pending_credits = rows[0]
    account = Account(ident, AccountKind(kind), currency, limit, category)
    return AccountState(account, posted, pending_debits, pending_credits)


async def statement(session: Session, account_id: str, limit: int) -> list[Entry]:
    """The account's latest `limit` transfers, newest first."""
    rows = await session.fetch(
        f"SELECT * FROM ({_ENTRY} WHERE debit = $1 UNION ALL {_ENTRY} WHERE credit = $1) t"  # noqa: S608
        " ORDER BY id DESC LIMIT $2",
        account_id,
        limit,
    )
    return [entry_from_row(row) for row in rows]


# Through the partial index of pending transfers by timeout (migration 0008).
EXPIRED_HOLDS = (
    f"{_ENTRY} t WHERE phase = 'pending' AND timeout_ms < $1"  # noqa: S608 (fixed text)
    " AND NOT EXISTS (SELECT 1 FROM transfers r WHERE r.origin = t.key)"
    " ORDER BY timeout_ms LIMIT $2"
)


async def expired_holds(session: Session, now_ms: int, limit: int) -> list[Entry]:
    """Pending transfers past their timeout that nothing has resolved yet."""
    return [entry_from_row(row) for row in await session.fetch(EXPIRED_HOLDS, now_ms, limit)]


async def stoplist_head(session: Session) -> Head:
    ((version, checksum),) = await session.fetch("SELECT version, checksum FROM stoplist_head")
    return Head(version, bytes(checksum))


async def stoplist_tokens(session: Session) -> list[str]:
    rows = await session.fetch("SELECT DISTINCT token FROM blocks ORDER BY token")
    return [token for (token,) in rows]


async def stoplist_size(session: Session) -> int:
    """Tokens listed, as kept with the head (a count of `blocks` would read the whole list)."""
    ((size,),) = await session.fetch("SELECT size FROM stoplist_head")
    return int(size)


async def stoplist_delta(session: Session, since: int, until: int | None = None) -> Delta:
    """The net change from version `since` to version `until` (the latest by default),
    with the checksum of the whole list at `until`."""
    head = await stoplist_head(session)
    last = head.version if until is None else until
    if not 0 <= since <= last <= head.version:
        raise LedgerError(f"stoplist versions {since}..{last} are not within 0..{head.version}")
    rows = await session.fetch(
        "SELECT version, token, listed, checksum FROM stoplist_changes"
        " WHERE version > $1 AND version <= $2 ORDER BY version",
        since,
        last,
    )
    changes = [
        Change(v, token, bool(listed), bytes(checksum)) for v, token, listed, checksum in rows
    ]
    reached = head if last == head.version else await stoplist_head_at(session, last)
    return net_delta(since, reached, changes)


async def stoplist_head_at(session: Session, version: int) -> Head:
    """Version `version` of the list with its checksum, as if it were the latest: that of
    the last change up to it (a renumbering skips versions without changing the list)."""
    rows = await session.fetch(
        "SELECT checksum FROM stoplist_changes WHERE version <= $1 ORDER BY version DESC LIMIT 1",
        version,
    )
    return Head(version, bytes(rows[0][0]) if rows else EMPTY_HEAD.checksum)


async def blocks_of(session: Session, token: str) -> list[tuple[str, str | None]]:
    """(reason, note) of every block on a token."""
    rows = await session.fetch(
        "SELECT reason, note FROM blocks WHERE token = $1 ORDER BY reason", token
    )
    return [(reason, note) for reason, note in rows]


DAY_TAPS = """
SELECT t.key, t.event_ms, t.credit, t.stop, t.category, coalesce(p.amount, t.amount), t.currency
FROM transfers t LEFT JOIN transfers p ON p.origin = t.key AND p.phase = 'post'
WHERE t.debit = $1 AND t.fare_day = $2 AND t.kind = 'fare'
  AND (t.phase = 'single' OR (t.phase = 'pending' AND p.id IS NOT NULL))
  AND NOT EXISTS (
      SELECT 1 FROM transfers r WHERE r.kind = 'reversal' AND r.origin = coalesce(p.key, t.key))
ORDER BY t.event_ms, t.key
"""

# The day's net charge per revenue account. Written as two halves, each through its
# account-day index: with `debit = $1 OR credit = $1`, SQLite read the day's every
# transfer through the fare_day index instead, for each rider settled.
DAY_CHARGED = f"""
SELECT other, sum(amount) FROM (
    SELECT credit AS other, amount FROM transfers
    WHERE debit = $1 AND fare_day = $2 AND {MOVES}
    UNION ALL
    SELECT debit, -amount FROM transfers
    WHERE credit = $1 AND fare_day = $2 AND {MOVES}
) AS moved
GROUP BY other
"""  # noqa: S608 (fixed text)

# What a settlement depends on besides the tariff: the rider's completed fares of the day
# and the reversals that took some back. Both are counted through the account-day indexes.
DAY_EVENTS = """
(SELECT count(*) FROM transfers
 WHERE debit = $1 AND fare_day = $2 AND kind = 'fare' AND phase IN ('single', 'post'))
+ (SELECT count(*) FROM transfers WHERE credit = $1 AND fare_day = $2 AND kind = 'reversal')
"""


async def day_state(session: Session, account_id: str, day: date) -> DayState:
    """Everything a settlement of one rider's fare day needs to know."""
    text = day.isoformat()
    taps = tuple(
        DayTap(key, event_ms, revenue, revenue.split(":", 3)[3], Money(amount, currency), stop, cat)
        for key, event_ms, revenue, stop, cat, amount, currency in await session.fetch(
            DAY_TAPS, account_id, text
        )
    )
    charged = {
        revenue: int(net) for revenue, net in await session.fetch(DAY_CHARGED, account_id, text)
    }
    ((events,),) = await session.fetch(f"SELECT {DAY_EVENTS}", account_id, text)
    settled = await session.fetch(
        "SELECT revision, dirty FROM fare_days WHERE account = $1 AND fare_day = $2",
        account_id,
        text,
    )
    # A day no settlement has seen yet is due if it has anything to rate; marks (the
    # `dirty` flag) only exist for days that have closed.
    revision, dirty = settled[0] if settled else (0, int(events) > 0)
    return DayState(account_id, day, revision, bool(dirty), int(events), taps, charged)


async def due_days(session: Session, last: date, limit: int) -> list[tuple[str, date]]:
    """Rider days up to `last` with fares or reversals that no settlement has seen."""
    rows = await session.fetch(
        "SELECT account, fare_day FROM fare_days WHERE dirty AND fare_day <= $1"
        " ORDER BY fare_day, account LIMIT $2",
        last.isoformat(),
        limit,
    )
    return [(account, date.fromisoformat(day)) for account, day in rows]


async def revenue(session: Session, day: date) -> list[tuple[str, Money]]:
    """Net fare revenue of each carrier and route account for one fare day."""
    rows = await session.fetch(
        f"""
        SELECT account, currency, sum(amount) FROM (
            SELECT credit AS account, currency, amount FROM transfers
            WHERE fare_day = $1 AND {MOVES} AND credit LIKE 'revenue:%'
            UNION ALL
            SELECT debit, currency, -amount FROM transfers
            WHERE fare_day = $1 AND {MOVES} AND debit LIKE 'revenue:%'
        ) m GROUP BY account, currency ORDER BY account
        """,  # noqa: S608 (fixed text)
        day.isoformat(),
    )
    return [(account, Money(int(total), currency)) for account, currency, total in rows]
