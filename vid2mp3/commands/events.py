"""``vid2mp3 events``: read the event log, and replay events to a function or the broker."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vid2mp3 import bootstrap, event_signatures, events
from vid2mp3.config import Config
from vid2mp3.db.database import Database
from vid2mp3.db.unit_of_work import UnitOfWork
from vid2mp3.errors import CommandError, InvalidInput, Vid2mp3Error
from vid2mp3.events import Event


@contextmanager
def _database(config: Config) -> Iterator[Database]:
    from vid2mp3.db.migrations import migrate

    db = bootstrap.make_database(config)
    try:
        migrate(db)
        yield db
    finally:
        db.close()


def run_list(*, as_json: bool, limit: int) -> int:
    with _database(Config.from_env()) as db, UnitOfWork(db) as uow:
        logged = uow.event_log.recent(limit)
    if as_json:
        print(json.dumps([e.public() for e in logged], indent=2))
        return 0
    if not logged:
        print("no events logged yet (the dispatcher logs what it delivers)")
        return 0
    for entry in logged:
        last = entry.deliveries[-1] if entry.deliveries else None
        status = f"{last.target} {last.outcome} ({last.status})" if last else "-"
        print(
            f"{entry.event.id}  {entry.event.type:<28}  {entry.event.subject:<36}  "
            f"{len(entry.deliveries):>2} deliveries  last: {status}"
        )
    return 0


def run_show(event_id: str) -> int:
    with _database(Config.from_env()) as db, UnitOfWork(db) as uow:
        entry = uow.event_log.get(event_id)
    if entry is None:
        raise CommandError(f"no event {event_id} in the event log")
    print(json.dumps(entry.public(), indent=2))
    return 0


def read_events_file(path: Path) -> list[Event]:
    """Events from a file: JSON lines, or one JSON document (an event or a list of them)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise CommandError(f"{path}: {exc.strerror}") from None
    try:
        whole = json.loads(text)
    except ValueError:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        found = []
        for number, line in lines:
            try:
                found.append(Event.from_json(line))
            except InvalidInput as exc:
                raise CommandError(f"{path}:{number}: {exc.message}") from None
        return found
    items = whole if isinstance(whole, list) else [whole]
    try:
        return [Event.from_json(json.dumps(item)) for item in items]
    except InvalidInput as exc:
        raise CommandError(f"{path}: {exc.message}") from None


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    detail: str


def _post_to(url: str) -> Callable[[Event], _Outcome]:
    from vid2mp3.bus.http import post_event

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CommandError(f"--to {url!r} is not an http(s) URL")

    def send(event: Event) -> _Outcome:
        try:
            status, body = post_event(url, event, timeout=3600)
        except OSError as exc:
            return _Outcome(False, f"no answer from {url}: {exc}")
        text = body[:300].decode(errors="replace").strip()
        return _Outcome(200 <= status < 300, f"{url} answered {status} {text}".strip())

    return send


def _broker(config: Config) -> Callable[[Event], _Outcome]:
    scheme = urlsplit(config.events_url).scheme
    if scheme == "memory":
        raise CommandError(
            "EVENTS_URL is memory:// (no broker outlives a process); use --to URL, or set "
            "EVENTS_URL to the broker (amqp://... or http(s)://...)"
        )
    sink = bootstrap.make_sink(config)

    def send(event: Event) -> _Outcome:
        try:
            events.validate(event)
            sink.publish(event)
        except Vid2mp3Error as exc:
            return _Outcome(False, exc.message)
        return _Outcome(True, "published")

    return send


def _report(event: Event, outcome: _Outcome, where: str = "") -> None:
    mark = "replayed" if outcome.ok else "FAILED  "
    suffix = f" [{where}]" if where else ""
    print(f"{mark} {event.id} {event.type}{suffix}: {outcome.detail}", flush=True)


def run_replay(
    ids: Sequence[str],
    *,
    file: str | None,
    dead_letters: bool,
    to: str | None,
) -> int:
    """Re-send events; returns 0 when every one was accepted, else 1."""
    config = Config.from_env()
    sources = sum((bool(ids), file is not None, dead_letters))
    if sources != 1:
        raise CommandError("give event IDs, or --file FILE, or --dead-letters (one of them)")
    if dead_letters:
        return _replay_dead_letters(config, to)
    if file is not None:
        chosen = read_events_file(Path(file))
    else:
        with _database(config) as db, UnitOfWork(db) as uow:
            chosen = []
            for event_id in ids:
                entry = uow.event_log.get(event_id)
                if entry is None:
                    raise CommandError(f"no event {event_id} in the event log")
                chosen.append(entry.event)
    send = _post_to(to) if to else _broker(config)
    failed = 0
    for event in chosen:
        # The operator holds the platform's key: what they replay is signed, as a publish is.
        outcome = send(event_signatures.sign(event, config))
        failed += not outcome.ok
        _report(event, outcome)
    return 1 if failed else 0


def _replay_dead_letters(config: Config, to: str | None) -> int:
    """Take every message out of the dispatcher's dead-letter queues and send it again: to
    ``to``, or back to the work queue of the function that failed it. A message that still
    fails stays in its dead-letter queue."""
    from vid2mp3.bus.amqp import AmqpAddress, event_from_message, import_pika
    from vid2mp3.runtime.topology import ATTEMPT_HEADER, FUNCTION_HEADER, STATUS_HEADER, Topology

    if urlsplit(config.events_url).scheme not in ("amqp", "amqps"):
        raise CommandError("dead letters live in RabbitMQ; set EVENTS_URL=amqp://...")
    address = AmqpAddress.parse(config.events_url)
    topology = Topology(address.exchange, config.retry_base_seconds, config.max_attempts)
    pika = import_pika(config.events_url)
    post = _post_to(to) if to else None
    try:
        connection = pika.BlockingConnection(address.parameters())
    except pika.exceptions.AMQPError as exc:
        raise CommandError(f"cannot reach the broker: {exc!r}") from None
    failed = replayed = 0
    try:
        channel = connection.channel()
        topology.declare(channel)
        publisher = connection.channel()
        publisher.confirm_delivery()
        for function in topology.triggers:
            # Take them all first: a message put back would otherwise be fetched again.
            taken: list[tuple[Any, Any, bytes]] = []
            while True:
                method, properties, body = channel.basic_get(topology.dead_letter_queue(function))
                if method is None:
                    break
                taken.append((method, properties, body))
            for method, properties, body in taken:
                headers = dict(properties.headers or {})
                try:
                    event = event_from_message(headers, body)
                except InvalidInput as exc:
                    print(f"FAILED   (not a CloudEvent in {function} dead letters): {exc.message}")
                    channel.basic_nack(method.delivery_tag, requeue=True)
                    failed += 1
                    continue
                if post is not None:
                    outcome = post(event_signatures.sign(event, config))
                else:
                    for name in (ATTEMPT_HEADER, FUNCTION_HEADER, STATUS_HEADER):
                        headers.pop(name, None)
                    publisher.basic_publish(
                        "",
                        topology.work_queue(function),
                        body,
                        properties=pika.BasicProperties(
                            content_type="application/json",
                            delivery_mode=2,
                            message_id=event.id,
                            headers=headers,
                        ),
                    )
                    outcome = _Outcome(True, f"back in the {function} queue")
                if outcome.ok:
                    channel.basic_ack(method.delivery_tag)
                    replayed += 1
                else:
                    channel.basic_nack(method.delivery_tag, requeue=True)
                    failed += 1
                _report(event, outcome, function)
    finally:
        connection.close()
    if not replayed and not failed:
        print("no dead letters", file=sys.stderr)
    return 1 if failed else 0
