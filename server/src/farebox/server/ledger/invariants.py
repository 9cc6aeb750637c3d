"""`verify`: recompute the books from their transfers and report every disagreement.

The database already refuses most bad states (checks, foreign keys, unique indexes,
append-only triggers, balances kept by trigger); this is the independent audit an
operator runs, and the tests run after every step: each currency sums to zero, each
balance equals the replay of its transfers, each tap has at most one fare posting and is
not both posted and set aside, no pending transfer posted more than it held, and the
stoplist matches the balances and its own recorded checksum and size.
"""

from __future__ import annotations

from farebox.protocol.stoplist import StoplistChecksum
from farebox.server.ledger.reads import MOVES, stoplist_head, stoplist_size, stoplist_tokens
from farebox.server.ledger.store import Session

_UNBALANCED = """
SELECT currency, sum(posted), sum(pending_debits) - sum(pending_credits) FROM accounts
GROUP BY currency HAVING sum(posted) <> 0 OR sum(pending_debits) <> sum(pending_credits)
"""

_REPLAY = f"""
SELECT a.id, a.posted, a.pending_debits, a.pending_credits,
       coalesce(m.posted, 0), coalesce(m.pending_debits, 0), coalesce(m.pending_credits, 0)
FROM accounts a LEFT JOIN (
    SELECT account, sum(posted) AS posted, sum(pending_debits) AS pending_debits,
           sum(pending_credits) AS pending_credits
    FROM (
        SELECT debit AS account, CASE WHEN {MOVES} THEN -amount ELSE 0 END AS posted,
               CASE WHEN open_hold THEN amount ELSE 0 END AS pending_debits,
               0 AS pending_credits
        FROM held
        UNION ALL
        SELECT credit, CASE WHEN {MOVES} THEN amount ELSE 0 END, 0,
               CASE WHEN open_hold THEN amount ELSE 0 END
        FROM held
    ) moves GROUP BY account
) m ON m.account = a.id
WHERE a.posted <> coalesce(m.posted, 0)
   OR a.pending_debits <> coalesce(m.pending_debits, 0)
   OR a.pending_credits <> coalesce(m.pending_credits, 0)
ORDER BY a.id
"""  # noqa: S608 (fixed text)

_HELD = """
WITH held AS (
    SELECT t.debit, t.credit, t.amount, t.phase,
           t.phase = 'pending' AND NOT EXISTS (SELECT 1 FROM transfers r WHERE r.origin = t.key)
               AS open_hold
    FROM transfers t
)
"""

_DOUBLE_FARES = """
SELECT device, seq, count(*) FROM transfers WHERE kind = 'fare' AND device IS NOT NULL
GROUP BY device, seq HAVING count(*) > 1
"""

_POSTED_AND_SET_ASIDE = """
SELECT u.device, u.seq FROM unposted_taps u
JOIN transfers t ON t.key = 'tap:' || u.device || ':' || u.seq ORDER BY u.device, u.seq
"""

_OVERPOSTED = """
SELECT r.key, r.amount, p.amount FROM transfers r JOIN transfers p ON p.key = r.origin
WHERE r.phase IN ('post', 'void') AND (p.phase <> 'pending' OR r.amount > p.amount)
"""

_LIMIT_FLAGS = """
SELECT a.id FROM accounts a
WHERE a.kind = 'rider' AND (
    ((a.posted - a.pending_debits < -a.credit_limit) <> a.limit_blocked)
    OR (a.limit_blocked <> EXISTS (
        SELECT 1 FROM blocks b WHERE b.token = substr(a.id, 7) AND b.reason = 'balance')))
ORDER BY a.id
"""

_LAST_VERSION = """
SELECT max(version) FROM (
    SELECT coalesce(max(version), 0) AS version FROM stoplist_changes
    UNION ALL SELECT coalesce(max(version), 0) FROM stoplist_renumberings) AS last
"""


async def violations(session: Session) -> list[str]:
    """Every invariant that does not hold, in words; empty when the books are sound."""
    found: list[str] = [
        f"{currency}: balances sum to {posted}, holds to {held}, not zero"
        for currency, posted, held in await session.fetch(_UNBALANCED)
    ]
    found += [
        f"{account}: stored posted/held-debit/held-credit {stored} but replay gives {replayed}"
        for account, *values in await session.fetch(_HELD + _REPLAY)
        for stored, replayed in [(tuple(values[:3]), tuple(values[3:]))]
    ]
    found += [
        f"tap {device}:{seq} has {count} fare postings"
        for device, seq, count in await session.fetch(_DOUBLE_FARES)
    ]
    found += [
        f"tap {device}:{seq} is posted and also set aside as unposted"
        for device, seq in await session.fetch(_POSTED_AND_SET_ASIDE)
    ]
    found += [
        f"{key} resolves {held} held with {amount}"
        for key, amount, held in await session.fetch(_OVERPOSTED)
    ]
    found += [
        f"{account}: stoplist entry disagrees with its balance and credit limit"
        for (account,) in await session.fetch(_LIMIT_FLAGS)
    ]
    head = await stoplist_head(session)
    ((last,),) = await session.fetch(_LAST_VERSION)
    if head.version != last:
        found.append(
            f"stoplist head is version {head.version}, the last change or renumbering {last}"
        )
    tokens = await stoplist_tokens(session)
    if StoplistChecksum.of(tokens).digest() != head.checksum:
        found.append("stoplist checksum differs from the checksum of the listed tokens")
    size = await stoplist_size(session)
    if size != len(tokens):
        found.append(f"stoplist size is kept as {size}, but {len(tokens)} tokens are listed")
    return found
