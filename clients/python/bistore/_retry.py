"""Retries: which failures are retried for which call, and how long to wait."""

from __future__ import annotations

import email.utils
import enum
import random
import time
from dataclasses import dataclass, field

import httpx


class Safety(enum.Enum):
    """How a call may be retried.

    IDEMPOTENT: reads, and writes the gateway deduplicates by Idempotency-Key
    (POST of entities, relationships and transactions, PATCH) or that write
    nothing (ids): retried after any transport failure, timeout, 502, 503
    and 500 outcome_unknown.

    DELETE: retried like IDEMPOTENT (with its Idempotency-Key, a retry gets
    the first answer); a 404 to a retry whose earlier attempt may have been
    applied also counts as done (the object is gone).

    UNSAFE: a reconciliation start: retried only when the request surely did
    not reach the gateway (the connection could not be made) or the gateway
    said it did nothing (503).
    """

    IDEMPOTENT = "idempotent"
    DELETE = "delete"
    UNSAFE = "unsafe"


# The request never left the client: safe to send again for any call.
NOT_SENT: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Anything else that went wrong on the way: the request may have been applied.
MAYBE_SENT: tuple[type[Exception], ...] = (httpx.TransportError,)

RETRY_STATUSES_SAFE = frozenset({502, 503})
RETRY_STATUSES_UNSAFE = frozenset({503})

# 503 codes that mean "this gateway cannot write now; another one (its standby,
# or the one promoted in its place) may": retried, at the next address when
# the client has several. Every 503 is retried already; these stay retried
# whatever else changes.
ANOTHER_GATEWAY_MAY = frozenset({"standby", "fenced", "not_ready", "replication_unavailable",
                                 "commit_in_doubt"})
# Of those, the ones whose write may still take effect (the gateway has it in
# SQLite and its fate depends on the replica or on Neo4j): after one of them
# the call's outcome is unknown until an answer to its Idempotency-Key says.
MAYBE_APPLIED_CODES = frozenset({"replication_unavailable", "commit_in_doubt"})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and full jitter.

    The n-th retry (n = 1, 2, ...) waits a random time in
    [0, min(max_backoff, backoff * 2**(n-1))], or the answer's Retry-After
    when that is longer (capped at max_retry_after). attempts counts the
    first try: attempts=1 disables retries.

    With several gateway addresses, each retry goes to the next address; a
    retry at an address not yet tried since the last wait goes at once, and
    the n-th full round of failed addresses waits as the n-th retry above.

    deadline (seconds, or None): when set, the call is retried for that long
    after it began, however many tries that takes (attempts is then not
    consulted): a failover takes seconds, and a writer may want "keep trying
    for 30 s". A wait that would end past the deadline is cut short to end
    at it, and one last try follows; a try under way is bounded by the
    client's timeout, not by the deadline.
    """

    attempts: int = 4
    backoff: float = 0.2
    max_backoff: float = 5.0
    max_retry_after: float = 30.0
    jitter: bool = True
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    deadline: float | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.backoff < 0 or self.max_backoff < 0 or self.max_retry_after < 0:
            raise ValueError("backoff times must not be negative")
        if self.deadline is not None and not self.deadline > 0:
            raise ValueError("deadline must be a positive number of seconds (or None)")

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        ceiling = min(self.max_backoff, self.backoff * (2 ** (retry - 1)))
        wait = self.rng.uniform(0, ceiling) if self.jitter else ceiling
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


NO_RETRIES = RetryPolicy(attempts=1)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The Retry-After header as seconds (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def retryable_status(safety: Safety, status: int, code: str | None) -> bool:
    if status == 503 and code in ANOTHER_GATEWAY_MAY:
        return True
    if safety is Safety.UNSAFE:
        return status in RETRY_STATUSES_UNSAFE
    if status == 500 and code == "outcome_unknown":
        return True
    return status in RETRY_STATUSES_SAFE


def retryable_exception(safety: Safety, exc: Exception) -> bool:
    if isinstance(exc, NOT_SENT):
        return True
    if safety is Safety.UNSAFE:
        return False
    return isinstance(exc, MAYBE_SENT)
