"""Rider fare days that settlement cannot rate, parked until something could change that.

A rater that cannot price a day raises UnratableDayError (no tariff in force at a tap, no
rule for a leg, a rider category the tariff lacks). `Ledger.settle_due` then parks the
day: its `fare_days` row keeps the reason and the version of the rules that failed it
(the newest tariff package the settlement held), and is no longer dirty, so the days after
it are settled and the next settlement does not pick it first again (migration 0012).

It is due again when something could change its answer: a fare or a reversal posted into
it marks it dirty, as it marks any closed day; newer rules mark it dirty at the next
settlement (`release`); and the settlement that rates it clears the reason (its claim,
`writes.claim_settlement`).
"""

from __future__ import annotations

from farebox.server.ledger.reads import DAY_EVENTS
from farebox.server.ledger.settlement import DayState
from farebox.server.ledger.store import Session

# Only the revision that was read, and dirty still if a fare or reversal came since.
_PARK = f"""
UPDATE fare_days SET dirty = ({DAY_EVENTS}) <> $4, parked_reason = $5, parked_rules = $6
WHERE account = $1 AND fare_day = $2 AND revision = $3
"""  # noqa: S608 (fixed text)
# Both through the partial index of the parked days, never the whole table.
RELEASE = """
UPDATE fare_days SET dirty = true
WHERE parked_reason IS NOT NULL AND parked_rules < $1 AND NOT dirty
"""
COUNT_PARKED = "SELECT count(*) FROM fare_days WHERE parked_reason IS NOT NULL"


async def park(session: Session, state: DayState, reason: str, rules: int) -> None:
    """Park the day `state` could not be rated from, by the rules numbered `rules`."""
    await session.execute(
        _PARK, state.account, state.day.isoformat(), state.revision, state.fares, reason, rules
    )


async def release(session: Session, rules: int) -> None:
    """Make due again the parked days that rules older than `rules` failed."""
    await session.execute(RELEASE, rules)


async def parked_days(session: Session) -> int:
    """How many rider days are parked, or were and wait for their next settlement."""
    ((count,),) = await session.fetch(COUNT_PARKED)
    return int(count)
