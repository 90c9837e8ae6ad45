"""The composition root: the library's one place that picks and imports concrete adapters.

(The runtime in ``vid2mp3.runtime`` is platform code, not library: its dispatcher and relay
read RabbitMQ and the outbox directly, as a broker would.)

Each port's adapter is picked by the scheme of its URL in ``Config``. Heavy client packages
(pymysql, pymongo, boto3, pika, openai) are imported inside the branch that needs them, so
``vid2mp3 --help`` stays fast and a missing package names itself and the URL that needed it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from vid2mp3.config import Config
from vid2mp3.db.database import Database
from vid2mp3.errors import ConfigError
from vid2mp3.ports import BlobStore, DirectTransfer, EventSink, Mailer, Summarizer, SummaryArchive
from vid2mp3.services import Services
from vid2mp3.speech.port import Transcriber

if TYPE_CHECKING:
    from vid2mp3.bus.memory import MemoryBus

_lock = threading.Lock()
_services: Services | None = None


def _file_path(url: str) -> str:
    parts = urlsplit(url)
    return (parts.netloc + parts.path) if parts.netloc not in ("", "localhost") else parts.path


def make_database(config: Config) -> Database:
    url = config.database_url
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from vid2mp3.db.sqlite import SqliteDatabase

        path = url.removeprefix("sqlite://")
        return SqliteDatabase(":memory:" if path in ("/:memory:", ":memory:") else path)
    if scheme in ("mysql", "mariadb", "mysql+pymysql"):
        from vid2mp3.db.mysql import MysqlDatabase

        return MysqlDatabase(url)
    raise ConfigError(f"DATABASE_URL scheme {scheme!r} is not supported (sqlite:, mysql:)")


def make_store(config: Config) -> BlobStore:
    """The blob store of ``STORAGE_URL``; its optional capabilities are found by
    ``capabilities``."""
    url = config.storage_url
    scheme = urlsplit(url).scheme
    if scheme == "file":
        from vid2mp3.storage.local import LocalBlobStore

        return LocalBlobStore(_file_path(url))
    if scheme in ("mongodb", "mongodb+srv"):
        from vid2mp3.storage.gridfs import GridFSBlobStore

        return GridFSBlobStore.from_url(url)
    if scheme == "s3":
        from vid2mp3.storage.s3 import S3BlobStore

        return S3BlobStore.from_url(url, multipart_threshold=config.multipart_threshold)
    raise ConfigError(f"STORAGE_URL scheme {scheme!r} is not supported (file:, mongodb:, s3:)")


def capabilities(store: BlobStore) -> tuple[DirectTransfer | None, SummaryArchive | None]:
    """What ``store`` offers beyond the ``BlobStore`` port: presigned browser transfers (S3)
    and a summary archive (GridFS). Decided here, by adapter, so no caller probes for it."""
    from vid2mp3.storage.gridfs import GridFSBlobStore
    from vid2mp3.storage.s3 import S3BlobStore

    direct = store if isinstance(store, S3BlobStore) else None
    archive = store if isinstance(store, GridFSBlobStore) else None
    return direct, archive


def make_sink(config: Config) -> EventSink:
    url = config.events_url
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from vid2mp3.bus.memory import MemoryBus

        return MemoryBus(max_attempts=config.max_attempts, base_delay=config.retry_base_seconds)
    if scheme in ("amqp", "amqps"):
        from vid2mp3.bus.amqp import AmqpEventSink

        return AmqpEventSink(url)
    if scheme in ("http", "https"):
        from vid2mp3.bus.http import HttpEventSink

        return HttpEventSink(url)
    raise ConfigError(f"EVENTS_URL scheme {scheme!r} is not supported (memory:, amqp:, http(s):)")


def make_mailer(config: Config) -> Mailer:
    if not config.smtp_url:
        from vid2mp3.mail.outbox import OutboxMailer

        return OutboxMailer(config.home / "outbox")
    from vid2mp3.mail.smtp import SmtpMailer

    return SmtpMailer(config.smtp_url)


def make_summarizer(config: Config) -> Summarizer | None:
    if not config.openai_base_url and not config.openai_api_key:
        return None
    from vid2mp3.ai.openai import OpenAISummarizer

    return OpenAISummarizer(config)


def transcriber_choice(config: Config) -> str:
    """``local``, ``openai`` or ``off``: ``TRANSCRIBER``, else local when the speech extra is
    installed, else openai when an AI endpoint is configured, else off."""
    from vid2mp3 import speech

    if config.transcriber:
        return config.transcriber
    if speech.local_available():
        return "local"
    if config.openai_base_url or config.openai_api_key:
        return "openai"
    return "off"


def make_transcriber(config: Config) -> Transcriber | None:
    """The ``Transcriber`` of ``transcriber_choice``; ``None`` when transcription is off."""
    choice = transcriber_choice(config)
    if choice == "local":
        from vid2mp3 import speech

        if not speech.local_available():
            raise ConfigError(
                "TRANSCRIBER=local needs the speech extra; install it with: "
                "pip install 'vid2mp3[speech]'"
            )
        from vid2mp3.speech import models
        from vid2mp3.speech.whisper_local import WhisperLocal

        return WhisperLocal(config.whisper_model, models_dir=models.models_dir(config.home))
    if choice == "openai":
        from vid2mp3.ai.openai import OpenAISummarizer
        from vid2mp3.ai.openai_transcriber import OpenAITranscriber

        client = OpenAISummarizer(config)
        return OpenAITranscriber(client, ffmpeg_binary=config.ffmpeg_binary)
    return None


def build(config: Config | None = None, **overrides: object) -> Services:
    """Wire a ``Services`` from ``config`` (default: the environment); ``overrides`` replace
    any port by name (``db``, ``store``, ``direct``, ``archive``, ``sink``, ``mailer_factory``,
    ``summarizer_factory``, ``transcriber_factory``)."""
    from vid2mp3.db.migrations import migrate

    config = config or Config.from_env()
    db = overrides.pop("db", None) or make_database(config)
    migrate(db)  # type: ignore[arg-type]
    store: BlobStore = overrides.pop("store", None) or make_store(config)  # type: ignore[assignment]
    direct, archive = capabilities(store)
    services = Services(
        config=config,
        db=db,  # type: ignore[arg-type]
        store=store,
        direct=overrides.pop("direct", direct),  # type: ignore[arg-type]
        archive=overrides.pop("archive", archive),  # type: ignore[arg-type]
        sink=overrides.pop("sink", None) or make_sink(config),  # type: ignore[arg-type]
        mailer_factory=overrides.pop("mailer_factory", None) or (lambda: make_mailer(config)),  # type: ignore[arg-type]
        summarizer_factory=overrides.pop("summarizer_factory", None)  # type: ignore[arg-type]
        or (lambda: make_summarizer(config)),
        transcriber_factory=overrides.pop("transcriber_factory", None)  # type: ignore[arg-type]
        or (lambda: make_transcriber(config)),
    )
    if overrides:
        raise TypeError(f"unknown overrides: {sorted(overrides)}")
    from vid2mp3.bus.memory import MemoryBus
    from vid2mp3.event_log import record_delivery

    if isinstance(services.sink, MemoryBus) and services.sink.on_delivery is None:
        services.sink.on_delivery = functools.partial(record_delivery, services.db)
    return services


def deliver_in_process(services: Services, apps: Mapping[str, Any]) -> MemoryBus | None:
    """With ``EVENTS_URL=memory:``, route the bus's deliveries to ``apps`` (the functions loaded
    in this process) and return the bus, whose workers the caller runs; ``None`` for a real
    broker. The one place the embedded default's bus meets the functions (``vid2mp3 up``,
    ``vid2mp3 convert`` and the tests all wire it here)."""
    from vid2mp3.bus.memory import AppDelivery, MemoryBus

    if not isinstance(services.sink, MemoryBus):
        return None
    services.sink.attach(AppDelivery(apps))
    return services.sink


def services() -> Services:
    """The process-wide ``Services``, built on first use (never at import)."""
    global _services
    with _lock:
        if _services is None:
            _services = build()
        return _services


def install(value: Services | None) -> None:
    """Replace the process-wide ``Services`` (the CLI, the gateway and tests do this)."""
    global _services
    with _lock:
        _services = value


def current_config() -> Config:
    """The installed ``Services``' config, else the environment's; never builds ``Services``.

    For what must answer even when building the services fails (the HTTP edge's CORS headers).
    Raises ``ConfigError`` when the environment's settings are wrong.
    """
    installed = _services  # one read of a reference: no lock, so a build in progress never blocks
    return installed.config if installed is not None else Config.from_env()
