"""Throttling of sign-in and sign-up: failures counted in the SQL database, so every instance of
every function sees the same counts.

Each attempt is counted as a failure in its buckets (the account and the client's address)
*before* its password is checked, and given back when it succeeds; so attempts sent at the same
moment cannot all slip in before the first failure is written. From a policy's ``free_failures``
th failure on, a bucket is locked for a delay that doubles with every further failure, up to
``max_delay``; a locked bucket refuses every attempt (the right password too) with 429 and
``Retry-After``. A successful sign-in clears its account's count. Counts are kept per email
whether or not an account has it, so neither the refusals nor their timing tell whether an
account exists.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

from vid2mp3.config import Config
from vid2mp3.db.unit_of_work import UnitOfWork
from vid2mp3.errors import TooManyRequests
from vid2mp3.services import Services

#: One attempt in this many also prunes buckets nobody has failed in for a long time.
_PRUNE_ONE_IN = 64
#: Its own generator: drawing from the global one would shift what other code (and tests
#: seeded for repeatability) get from it.
_chance = random.Random()


@dataclass(frozen=True)
class Policy:
    """How one kind of bucket counts.

    Args:
        scope: the bucket kind, stored with each row.
        free_failures: the failure that first locks the bucket.
        first_delay: seconds that first lock lasts; each further failure doubles it.
        max_delay: the longest lock.
        forget_after: a bucket with no failure for this long starts over (at least
            ``max_delay``, so a bucket is never forgotten while locked).
        clear_on_success: a success forgets the whole count (the account), rather than only
            giving back its own attempt (an address, which many people may share).
    """

    scope: str
    free_failures: int
    first_delay: float
    max_delay: float
    forget_after: float
    clear_on_success: bool = False

    def __post_init__(self) -> None:
        if self.forget_after < self.max_delay:
            raise ValueError(f"{self.scope}: forget_after must be at least max_delay")

    def delay(self, failures: int) -> float:
        """Seconds the bucket stays locked after its ``failures``-th failure (0: not locked)."""
        if failures < self.free_failures:
            return 0.0
        return min(self.max_delay, self.first_delay * 2 ** (failures - self.free_failures))


#: Failed sign-ins of one email (an account or not): 5, then 15 s, 30 s, ... up to 15 min.
LOGIN_ACCOUNT = Policy(
    "login-account", 5, first_delay=15, max_delay=900, forget_after=3600, clear_on_success=True
)
#: Failed sign-ins from one address, whatever the email: an office or a NAT shares one.
LOGIN_ADDRESS = Policy("login-address", 10, first_delay=15, max_delay=900, forget_after=3600)
#: Sign-ups from one address refused because the email was taken (each one says an account
#: exists): 5, then a minute, doubling up to an hour.
SIGNUP_ADDRESS = Policy("signup-address", 5, first_delay=60, max_delay=3600, forget_after=3600)


@dataclass(frozen=True)
class _Charge:
    policy: Policy
    subject: str
    #: The lock this attempt set (its counted failure reached the limit), if any.
    lock_set: float | None


class _MissingBucket(Exception):
    """A bucket has no row yet: create it in a transaction of its own, then count again."""

    def __init__(self, scope: str, subject: str) -> None:
        super().__init__(scope)
        self.scope = scope
        self.subject = subject


@dataclass(frozen=True)
class Attempt:
    """An attempt counted in its buckets; pass it to ``succeeded`` if it turns out right."""

    charges: tuple[_Charge, ...]


def _subject(value: str) -> str:
    # A digest, so the table keeps no typed email (nor whatever else was typed as one).
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def begin(
    services: Services, buckets: Mapping[Policy, str], *, now: float | None = None
) -> Attempt:
    """Count an attempt in each of ``buckets`` (policy → key, e.g. the email or the address).

    Raises ``TooManyRequests`` (nothing counted) when any bucket is locked; the message is
    the same for every bucket, and says when to try again.
    """
    at = time.time() if now is None else now
    # Always in the same order, so two attempts never wait on each other's rows.
    ordered = sorted(buckets.items(), key=lambda item: item[0].scope)

    def charge(uow: UnitOfWork) -> Attempt:
        charges = []
        for policy, key in ordered:
            subject = _subject(key)
            failures = uow.throttles.charge(
                policy.scope, subject, now=at, forget_before=at - policy.forget_after
            )
            # Raised inside the transaction: what was counted so far is rolled back.
            if failures == 0:
                raise _MissingBucket(policy.scope, subject)
            if failures is None:
                wait = _seconds(uow.throttles.locked_until(policy.scope, subject) - at)
                raise TooManyRequests(
                    f"too many failed attempts; try again in {wait} seconds", retry_after=wait
                )
            delay = policy.delay(failures)
            lock_set = at + delay if delay else None
            if lock_set is not None:
                uow.throttles.lock(policy.scope, subject, lock_set)
            charges.append(_Charge(policy, subject, lock_set))
        return Attempt(tuple(charges))

    # A missing bucket is created once (rows are only pruned long after their last failure),
    # so this takes at most one round per bucket, plus the one that counts.
    for _ in range(len(ordered) + 1):
        try:
            attempt = services.atomically(charge)
            break
        except _MissingBucket as missing:
            services.atomically(
                lambda uow, m=missing: uow.throttles.create(m.scope, m.subject, now=at)
            )
    else:
        raise AssertionError("a throttle bucket went missing right after it was created")
    if _chance.randrange(_PRUNE_ONE_IN) == 0:
        oldest = max(policy.forget_after for policy in buckets)
        services.atomically(lambda uow: uow.throttles.prune(at - oldest))
    return attempt


def succeeded(services: Services, attempt: Attempt) -> None:
    """The attempt was right: give back what it counted (an account's whole count)."""

    def give_back(uow: UnitOfWork) -> None:
        for charge in attempt.charges:
            if charge.policy.clear_on_success:
                uow.throttles.clear(charge.policy.scope, charge.subject)
            else:
                uow.throttles.refund(charge.policy.scope, charge.subject, lock_set=charge.lock_set)

    services.atomically(give_back)


def _seconds(wait: float) -> int:
    return max(1, math.ceil(wait))


def client_address(config: Config, remote_addr: str | None, headers: Mapping[str, str]) -> str:
    """Who is calling, as a throttling key: the connection's address or, when
    ``TRUSTED_PROXY_HEADER`` names a header the proxy in front overwrites, the right-most
    address in it. IPv6 addresses count per /64 (one host usually has the whole network).
    An address that does not parse falls back to the connection's (never to what was typed)."""
    if config.trusted_proxy_header:
        forwarded = headers.get(config.trusted_proxy_header) or ""
        address = _parse(forwarded.rsplit(",", 1)[-1])
        if address is not None:
            return address
    return _parse(remote_addr or "") or "unknown"


def _parse(raw: str) -> str | None:
    text = raw.strip()
    # Some proxies add the port: "10.0.0.1:5123", "[2001:db8::1]:5123".
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
