"""Transfer credits: what a leg that lowers its journey's cost gives back, and when.

GTFS prices a sub-journey as a whole. A type 2 transfer product (AB) cheaper than the
first leg, or a joined leg cheaper than its first part alone, makes the journey cost
less than the rider was already charged for it: that leg's pay-as-you-go `fare` is
negative. A validator charges at each tap and cannot hand money back, and the journal and
the ledger record no negative fare, so no leg is charged less than nothing. Instead:

- the credit is at most what the rider was charged for the open sub-journey (after passes
  and caps, less the credits it already gave): a leg that a pass or a cap made free paid
  nothing, so it gives nothing back;
- the rider keeps it, and it is taken off their next charges in the same fare day; what
  is left when the fare day ends lapses.

Fare caps count what was actually charged, so a credit spent on a later leg never lets
the rider's day go over a cap, and a credit never "gives room back" under one.
"""

from __future__ import annotations

from typing import NamedTuple


class Paid(NamedTuple):
    """What the rider was charged toward parts of the journey, net of credits given.

    `open` is for the open sub-journey; `before_last` for the open sub-journey of the
    fares the last fare leg was added to, and `last` for the last fare leg: a join
    replaces the last fare leg, so the credit it may give is bounded by those.
    """

    open: int = 0
    before_last: int = 0
    last: int = 0

    def toward(self, *, joined: bool, continued: bool) -> Paid:
        """The totals a fare leg starts from: `joined` to the last, `continued` by a transfer."""
        already = self.last if joined else 0
        base = self.before_last if joined else self.open
        return Paid((base if continued else 0) + already, base, already)

    def plus(self, net: int) -> Paid:
        """The totals once the new fare leg is charged `net` (negative: a credit given)."""
        return Paid(self.open + net, self.before_last, self.last + net)


class Credit(NamedTuple):
    """Credit the rider holds, on the fare day (an ordinal) it was given."""

    day: int
    amount: int

    def held_on(self, day: int) -> int:
        return self.amount if self.day == day else 0


def take(credit: Credit | None, day: int, charge: int) -> tuple[int, Credit | None]:
    """How much of `charge` the rider's credit on `day` pays, and the credit left."""
    held = 0 if credit is None else credit.held_on(day)
    used = min(held, charge)
    return used, Credit(day, held - used) if held > used else None


def give(credit: Credit | None, day: int, amount: int) -> Credit:
    """The rider's credit on `day` after `amount` more is given."""
    return Credit(day, (0 if credit is None else credit.held_on(day)) + amount)
