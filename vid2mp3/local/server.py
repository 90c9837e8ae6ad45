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
import functools
import os
import signal
import threading
from typing import Any
from urllib.parse import urlsplit

from vid2mp3 import bootstrap, event_signatures, logs, shutdown
from vid2mp3.bus.memory import MemoryBus
from vid2mp3.config import Config
from vid2mp3.errors import CommandError
from vid2mp3.local import webui
from vid2mp3.local.gateway import Gateway
from vid2mp3.local.proxy import body_limit
from vid2mp3.runtime import functions
from vid2mp3.runtime.daemons import make_dispatcher, uses_dispatcher
from vid2mp3.runtime.relay import OutboxRelay
from vid2mp3.services import Services
from vid2mp3.triggers import ALL_FUNCTIONS


def build_gateway(config: Config) -> tuple[Gateway, Any]:
    services = bootstrap.build(config)
    bootstrap.install(services)
    apps = functions.load_all()
    bus = bootstrap.deliver_in_process(services, apps)
    if bus is not None:
        bus.start(workers=2)
    return make_gateway(config, apps), services


def make_gateway(config: Config, apps: dict[str, Any]) -> Gateway:
    """The gateway of ``vid2mp3 up``: event functions only for events the platform signed,
    async callbacks only to the addresses a webhook may reach."""
    return Gateway(
        apps,
        index=webui.create_app(),
        verify_event=functools.partial(event_signatures.verify, config=config),
        allow_private_callbacks=config.allow_private_webhooks,
        body_limit=functools.partial(body_limit, config=config),
    )


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def run_up(*, host: str = "127.0.0.1", port: int = 8080, processes: bool = False) -> int:
    from werkzeug.serving import make_server

    logs.configure(os.environ.get("VID2MP3_LOG_LEVEL", "INFO"))
    config = Config.from_env()
    if not os.environ.get("PUBLIC_URL"):
        config = dataclasses.replace(config, public_url=f"http://{host}:{port}")
    # The gateway overwrites X-Forwarded-For with its client's address, so the functions may
    # trust it (in --processes mode their own connection is the gateway's). A header set
    # explicitly stays: a proxy in front of `up` that sets it, which the gateway passes on.
    trusted_header = config.trusted_proxy_header or "X-Forwarded-For"
    config = dataclasses.replace(config, trusted_proxy_header=trusted_header)
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
            gateway = make_gateway(config, {})
            server = make_server(host, port, gateway, threaded=True)
            supervisor = FunctionProcesses(
                ALL_FUNCTIONS,
                env={
                    **os.environ,
                    "PUBLIC_URL": config.public_url,
                    "TRUSTED_PROXY_HEADER": trusted_header,
                },
            )
            supervisor.start()
            gateway.apps.update(
                {
                    name: FunctionProxy.for_function(name, supervisor.host, proc.port, config)
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
