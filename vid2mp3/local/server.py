"""``vid2mp3 up``: the gateway and every function on one port, plus the dispatcher on AMQP.

Functions serve from this process (the default) or, with ``--processes``, each from its own
functions-framework process behind a streaming proxy. With ``EVENTS_URL=amqp://...`` the local
dispatcher runs too, delivering events from RabbitMQ to ``/function/<name>`` on this gateway.
The outbox relay always runs: an event committed while the broker was down goes out once it is
back, and a step whose worker died is announced again.

On SIGTERM, work in flight gets ``SHUTDOWN_GRACE_SECONDS`` to finish, then is handed back
(``vid2mp3.shutdown``): a conversion stopped this way resumes after the next start.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from typing import Any
from urllib.parse import urlsplit

from vid2mp3 import bootstrap, logs, shutdown
from vid2mp3.bus.memory import MemoryBus
from vid2mp3.config import Config
from vid2mp3.errors import CommandError
from vid2mp3.local import functions, webui
from vid2mp3.local.gateway import Gateway
from vid2mp3.relay import OutboxRelay
from vid2mp3.services import Services
from vid2mp3.triggers import ALL_FUNCTIONS


def build_gateway(config: Config) -> tuple[Gateway, Any]:
    services = bootstrap.build(config)
    bootstrap.install(services)
    apps = functions.load_all()
    if isinstance(services.sink, MemoryBus):
        services.sink.attach(functions.InProcessDelivery(apps))
        services.sink.start(workers=2)
    return Gateway(apps, index=webui.create_app()), services


def uses_dispatcher(config: Config) -> bool:
    """True when events travel through RabbitMQ, which needs our dispatcher to reach functions
    (an ``http(s)`` sink is a Knative broker, which delivers by itself)."""
    return urlsplit(config.events_url).scheme in ("amqp", "amqps")


def make_dispatcher(config: Config, services: Services, invoke_url: str) -> Any:
    from vid2mp3.local.dispatcher import Dispatcher

    return Dispatcher(
        config.events_url,
        invoke_url,
        db=services.db,
        max_attempts=config.max_attempts,
        retry_base=config.retry_base_seconds,
    )


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def run_up(*, host: str = "127.0.0.1", port: int = 8080, processes: bool = False) -> int:
    from werkzeug.serving import make_server

    logs.configure(os.environ.get("VID2MP3_LOG_LEVEL", "INFO"))
    config = Config.from_env()
    if not os.environ.get("PUBLIC_URL"):
        config = dataclasses.replace(config, public_url=f"http://{host}:{port}")
    if processes and urlsplit(config.events_url).scheme == "memory":
        # Each process would have its own in-process bus, and no event would reach anyone.
        raise CommandError(
            "--processes needs a broker the processes share: set EVENTS_URL=amqp://... "
            "(RabbitMQ) or run without --processes"
        )
    supervisor = None
    dispatcher = None
    relay: OutboxRelay | None = None
    gateway: Gateway | None = None
    services: Services | None = None
    shutdown.reset()
    # Until the server runs, a SIGTERM unwinds through ``finally`` so no child process is left.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        if processes:
            from vid2mp3.local.processes import FunctionProcesses
            from vid2mp3.local.proxy import FunctionProxy

            # Migrate once here, before the function processes start and would race to do it.
            services = bootstrap.build(config)
            bootstrap.install(services)
            # Bind our own port before the function processes pick theirs, so none takes it.
            gateway = Gateway({}, index=webui.create_app())
            server = make_server(host, port, gateway, threaded=True)
            supervisor = FunctionProcesses(
                ALL_FUNCTIONS, env={**os.environ, "PUBLIC_URL": config.public_url}
            )
            supervisor.start()
            gateway.apps.update(
                {
                    name: FunctionProxy(name, supervisor.host, proc.port)
                    for name, proc in supervisor.processes.items()
                }
            )
        else:
            gateway, services = build_gateway(config)
            server = make_server(host, port, gateway, threaded=True)
        if uses_dispatcher(config):
            call_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
            dispatcher = make_dispatcher(config, services, f"http://{call_host}:{port}/function")
            # Queues exist before the first upload, so no event is published into the void.
            dispatcher.declare()
        if supervisor is not None:
            supervisor.wait_ready()
        if dispatcher is not None:
            dispatcher.start()
        assert services is not None
        relay = OutboxRelay(services)
        relay.start()

        def stop(*_: Any) -> None:
            if not processes:
                # Functions run here: give their work the grace period, then hand it back.
                shutdown.request(config.shutdown_grace_seconds)
            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        mode = "one process per function" if processes else "in this process"
        extra = ", dispatcher on" if dispatcher is not None else ""
        print(
            f"vid2mp3 up: serving {len(gateway.apps)} functions ({mode}{extra}) on "
            f"http://{host}:{server.port}/function/<name>; web UI at http://{host}:{server.port}/ "
            f"(state in {config.home})",
            flush=True,
        )
        server.serve_forever()
    finally:
        if relay is not None:
            relay.stop()
        if gateway is not None:
            gateway.close()  # let queued async calls and their callbacks finish
        if supervisor is not None:
            supervisor.terminate()  # their work in flight starts its grace period now
        if dispatcher is not None:
            # Deliveries in flight end within the grace period: finished, or handed back.
            dispatcher.stop(timeout=config.shutdown_grace_seconds + 5)
        if supervisor is not None:
            # The servers' work gets its grace period, then is handed back (or killed).
            supervisor.stop(timeout=config.shutdown_grace_seconds + 10)
        if services is not None and isinstance(services.sink, MemoryBus):
            services.sink.stop()
    return 0


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
