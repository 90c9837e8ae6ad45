"""``vid2mp3 dispatch`` and ``vid2mp3 relay``: the long-running processes of a deployment.

The dispatcher delivers RabbitMQ events to functions over HTTP (the OpenFaaS path, where no
Knative broker does it); the relay publishes what the outbox holds. Both also run inside
``vid2mp3 up`` (``vid2mp3.local.server``).
"""

from __future__ import annotations

import os
import signal
from typing import Any
from urllib.parse import urlsplit

from vid2mp3 import bootstrap, logs
from vid2mp3.config import Config
from vid2mp3.errors import CommandError
from vid2mp3.runtime.relay import OutboxRelay
from vid2mp3.services import Services


def uses_dispatcher(config: Config) -> bool:
    """True when events travel through RabbitMQ, which needs our dispatcher to reach functions
    (an ``http(s)`` sink is a Knative broker, which delivers by itself)."""
    return urlsplit(config.events_url).scheme in ("amqp", "amqps")


def make_dispatcher(config: Config, services: Services, invoke_url: str) -> Any:
    from vid2mp3.runtime.dispatcher import Dispatcher

    return Dispatcher(
        config.events_url,
        invoke_url,
        db=services.db,
        max_attempts=config.max_attempts,
        retry_base=config.retry_base_seconds,
    )


def run_dispatch(*, invoke_url: str) -> int:
    """``vid2mp3 dispatch``: the dispatcher, delivering to ``<invoke_url>/<function>``, and the
    outbox relay."""
    logs.configure(os.environ.get("VID2MP3_LOG_LEVEL", "INFO"))
    config = Config.from_env()
    if not uses_dispatcher(config):
        raise CommandError(
            f"the dispatcher reads RabbitMQ; set EVENTS_URL=amqp://... (it is {config.events_url})"
        )
    services = bootstrap.build(config)
    dispatcher = make_dispatcher(config, services, invoke_url)
    relay = OutboxRelay(services)
    signal.signal(signal.SIGTERM, lambda *_: dispatcher.stop(timeout=0))
    print(f"vid2mp3 dispatch: delivering to {invoke_url.rstrip('/')}/<function>", flush=True)
    relay.start()
    try:
        dispatcher.run()
    finally:
        relay.stop()
        dispatcher.stop(timeout=0)
        services.db.close()
    return 0


def run_relay() -> int:
    """``vid2mp3 relay``: only the outbox relay, until SIGTERM (its own deployment)."""
    logs.configure(os.environ.get("VID2MP3_LOG_LEVEL", "INFO"))
    services = bootstrap.build(Config.from_env())
    relay = OutboxRelay(services)
    signal.signal(signal.SIGTERM, lambda *_: relay.stop(timeout=0))
    print(f"vid2mp3 relay: publishing to {services.config.events_url.split('@')[-1]}", flush=True)
    try:
        relay.run()
    finally:
        services.db.close()
    return 0
