"""``vid2mp3 up``: the gateway and every function, served on one port."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
from typing import Any

from vid2mp3 import bootstrap, logs
from vid2mp3.bus.memory import MemoryBus
from vid2mp3.config import Config
from vid2mp3.local import functions
from vid2mp3.local.gateway import Gateway


def build_gateway(config: Config) -> tuple[Gateway, Any]:
    services = bootstrap.build(config)
    bootstrap.install(services)
    apps = functions.load_all()
    if isinstance(services.sink, MemoryBus):
        services.sink.attach(functions.InProcessDelivery(apps))
        services.sink.start(workers=2)
    return Gateway(apps), services


def run_up(*, host: str = "127.0.0.1", port: int = 8080) -> int:
    from werkzeug.serving import make_server

    logs.configure(os.environ.get("VID2MP3_LOG_LEVEL", "INFO"))
    config = Config.from_env()
    if not os.environ.get("PUBLIC_URL"):
        config = dataclasses.replace(config, public_url=f"http://{host}:{port}")
    gateway, services = build_gateway(config)
    server = make_server(host, port, gateway, threaded=True)

    def stop(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(
        f"vid2mp3 up: serving {len(gateway.apps)} functions on http://{host}:{server.port}/function/<name>"
        f" (state in {config.home})",
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        if isinstance(services.sink, MemoryBus):
            services.sink.stop()
    return 0
