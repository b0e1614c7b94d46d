"""Deciding how a subscriber catches up (no I/O here: plain values in, a plan out).

A subscriber at ``since`` on a log that retains ``first_seq .. last_seq``:

- ``since`` is None: nothing to replay; start live after ``last_seq``.
- ``since >= first_seq - 1``: replay ``since+1 .. last_seq`` from the log, then live.
- ``since < first_seq - 1``: the events in between were trimmed: announce a ``gap``, send
  fresh snapshots, replay ``first_seq .. last_seq``.
- ``since > last_seq``: the cursor is ahead of the log (another database, or a reset one):
  treat as a void cursor, like an epoch mismatch.
"""

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ResumeKind", "ResumePlan", "plan_resume"]


class ResumeKind(StrEnum):
    LIVE = "live"  #: no cursor: start from now
    REPLAY = "replay"  #: replay what was missed, then live
    GAP = "gap"  #: part of what was missed is trimmed: gap + snapshots + replay the rest
    VOID = "void"  #: the cursor does not belong to this log


@dataclass(frozen=True, slots=True)
class ResumePlan:
    kind: ResumeKind
    replay_after: int  #: replay events with seq > replay_after
    first_available: int
    last_seq: int


def plan_resume(
    since: int | None,
    *,
    first_seq: int,
    last_seq: int,
    client_epoch: str | None,
    log_epoch: str,
) -> ResumePlan:
    """Return how to bring a subscriber from ``since`` to the head of the log."""
    if client_epoch is not None and client_epoch != log_epoch:
        return ResumePlan(ResumeKind.VOID, last_seq, first_seq, last_seq)
    if since is None:
        return ResumePlan(ResumeKind.LIVE, last_seq, first_seq, last_seq)
    if since > last_seq:
        return ResumePlan(ResumeKind.VOID, last_seq, first_seq, last_seq)
    if since < first_seq - 1:
        return ResumePlan(ResumeKind.GAP, first_seq - 1, first_seq, last_seq)
    return ResumePlan(ResumeKind.REPLAY, since, first_seq, last_seq)
