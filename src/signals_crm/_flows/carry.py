"""Partial batches carried across the rounds of a backfill. Pure.

A backfill syncs its conversations in rounds of ``batch_size``. Each kind of write of a round
goes in calls of the adapter's write batch size (200 records on Salesforce), so the last call
of each kind is usually part-empty: 700 new Leads are three calls of 200 and one of 100. A
backfill that carries those 100 conversations into the next round sends only full calls, and
the remainders of all rounds together fill the calls of the last one.

The rule (:func:`carried`), applied to a round's plans after planning and before any write:

1. Count each kind's writes still to send (commands the ledger already holds as CONFIRMED or
   FAILED are not sent again and do not count). The round's *waste* is the number of empty
   places in the calls it would send: for each kind, the count rounded up to a multiple of the
   write batch size, less the count.
2. Conversations are carried whole (all their writes, never some). Those with the same
   writes to send (one create, one membership and two tasks, say) are interchangeable, so the
   rule picks how many of each such group to carry — the latest ones of the group — so that
   the waste is least, and among equal wastes carries the fewest (two passes over the groups,
   each group's count chosen with the others fixed).
3. A conversation of an email that an earlier conversation of the round carries is carried
   too, so one visitor's conversations are written in the order they came.
4. At most half a round is carried, so a round always makes progress and memory stays flat;
   the last round of a backfill carries nothing, so everything is written by its end.

A carried conversation has written nothing: the next round looks it up and plans it again
with the conversations that come next, so it is written from what the CRM holds then. Its
lookup rides in the next round's lookup call, so carrying costs no API call.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from signals_crm.core.model import normalize_email
from signals_crm.core.plan import Command, CommandKind, Plan

__all__ = ["carried"]

Signature = tuple[tuple[CommandKind, int], ...]
_PASSES = 2


def _by_kind(item: tuple[CommandKind, int]) -> str:
    return item[0].value


def _waste(counts: Counter[CommandKind], size: int) -> int:
    return sum(-n % size for n in counts.values())


def carried(
    plans: Sequence[Plan],
    *,
    size: int,
    pending: Callable[[Command], bool] | None,
    limit: int | None = None,
) -> set[str]:
    """The ids of the conversations to carry into the next round (module doc, rules 1-4).

    ``size`` is the write batch size; ``pending`` tells whether a command is still to be sent
    (``None``: every command is);
    ``limit`` caps how many are carried (default: half of ``plans``).
    """
    size = max(1, size)
    cap = len(plans) // 2 if limit is None else limit
    groups: dict[Signature, list[int]] = {}
    # A plan's kinds to send, in its order (by value: no enum hashing) → their signature.
    signatures: dict[tuple[str, ...], Signature] = {}
    for index, plan in enumerate(plans):
        if pending is None:
            kinds = [c.kind for c in plan.commands]
        else:
            kinds = [c.kind for c in plan.commands if pending(c)]
        if kinds:
            names = tuple([kind._value_ for kind in kinds])
            signature = signatures.get(names)
            if signature is None:
                signature = tuple(sorted(Counter(kinds).items(), key=_by_kind))
                signatures[names] = signature
            groups.setdefault(signature, []).append(index)
    sent: Counter[CommandKind] = Counter()
    for signature, members in groups.items():
        for kind, n in signature:
            sent[kind] += n * len(members)
    chosen: dict[Signature, int] = dict.fromkeys(groups, 0)
    for _ in range(_PASSES):
        for signature, members in groups.items():
            for kind, n in signature:  # this group's choice undone
                sent[kind] += chosen[signature] * n
            room = cap - sum(chosen.values()) + chosen[signature]
            best = (_waste(sent, size), 0)
            trial = Counter(sent)
            # Waste is periodic in the count carried (period: the batch size), so the least
            # carrying count of each waste lies within one period.
            for carry in range(1, min(len(members), room, size) + 1):
                for kind, n in signature:
                    trial[kind] -= n
                best = min(best, (_waste(trial, size), carry))
            chosen[signature] = best[1]
            for kind, n in signature:
                sent[kind] -= best[1] * n
    picked = {i for sig, members in groups.items() for i in members[len(members) - chosen[sig] :]}
    out: set[str] = set()
    held: set[str] = set()
    for index, plan in enumerate(plans):  # rule 3
        if index in picked:
            out.add(plan.conversation_id)
            if plan.email:
                held.add(normalize_email(plan.email))
        elif held and plan.email and (email := normalize_email(plan.email)) in held:
            out.add(plan.conversation_id)
            held.add(email)
    return out
