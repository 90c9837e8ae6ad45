"""The outbox relay: nothing committed is lost, nothing abandoned stays stuck.

Every ``RELAY_INTERVAL_SECONDS`` it

1. announces again the steps whose worker died (its lease ran out) or that were handed back
   and not picked up within a lease period, re-publishing the event that started them; a job
   whose workers died more than ``MAX_TAKEOVERS`` times fails, with a reason that blames the
   service, not the file;
2. publishes the outbox rows nobody published (the broker was down when they committed, or the
   publisher died), claimed like every publish so several relays never send one row twice.

It runs inside ``vid2mp3 up`` and ``vid2mp3 dispatch``, and alone as ``vid2mp3 relay`` (its
deployments: ``infra/knative/relay.yaml``, ``infra/openfaas/relay.yaml``; OpenFaaS CE's dispatcher
runs it itself). Several may run at once.
"""

from __future__ import annotations

import logging
import threading

from vid2mp3 import jobs, steps
from vid2mp3.errors import TransientError
from vid2mp3.services import Services

log = logging.getLogger(__name__)


class OutboxRelay:
    """Publish what the outbox holds and re-announce abandoned steps, every ``interval`` s.

    Args:
        services: the database, sink and settings to work with.
        interval: seconds between rounds (default ``RELAY_INTERVAL_SECONDS``).
    """

    def __init__(self, services: Services, *, interval: float | None = None) -> None:
        self.services = services
        self.interval = interval or services.config.relay_interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> tuple[int, int]:
        """One round; returns (steps announced again, events published)."""
        return self._reannounce(), self._publish()

    def _reannounce(self) -> int:
        config = self.services.config
        abandoned = self.services.atomically(
            lambda uow: uow.leases.abandoned(wait_seconds=config.job_lease_seconds)
        )
        announced = 0
        for step in abandoned:
            where = {
                "job_id": step.job_id,
                "step": step.step,
                "event_id": step.event.id,
                "takeovers": step.takeovers,
            }
            reason = steps.kept_stopping(config, step.takeovers)
            if reason is not None:
                jobs.fail(self.services, step.job_id, stage=step.step, reason=reason)
                continue
            try:
                self.services.publish(step.event)
            except TransientError as exc:
                # Reserved for a lease period already: the next round after it tries again.
                log.warning(
                    "could not announce an abandoned step", extra={**where, "reason": exc.message}
                )
                continue
            announced += 1
            log.warning("abandoned step announced again", extra=where)
        return announced

    def _publish(self) -> int:
        total = 0
        while (sent := self.services.publish_outbox()) > 0:
            total += sent
        return total

    def run(self) -> None:
        """Relay until ``stop()``; a round that fails is logged and the next one tries again."""
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("relay round failed; trying again")
            self._stop.wait(self.interval)

    def start(self) -> threading.Thread:
        """Run in a background thread; returns it."""
        self._thread = threading.Thread(target=self.run, name="outbox-relay", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
