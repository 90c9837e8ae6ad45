"""Every setting, read once from the environment (12-factor).

Each setting has a default that is safe for the embedded mode (one machine, no servers, all
state under ``VID2MP3_HOME``). A deployment that uses any real backend must set ``JWT_SECRET``:
it refuses to start with a generated one. A secret may also come from a file named by
``<KEY>_FILE`` (OpenFaaS and Kubernetes mount secrets as files).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vid2mp3.errors import ConfigError

GIB = 1024**3
MIB = 1024**2
#: What ``TRANSCRIBER`` may name (empty: chosen by what is installed and configured).
TRANSCRIBERS = ("local", "openai", "off")


def read_secret(env: Mapping[str, str], key: str) -> str:
    """``KEY`` from the environment, else the contents of the file named by ``KEY_FILE``."""
    if env.get(key):
        return env[key]
    path = env.get(f"{key}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{key}_FILE={path!r} cannot be read: {exc.strerror}") from exc
    return ""


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not a whole number") from None
    if value <= 0:
        raise ConfigError(f"{key}={raw!r} must be greater than zero")
    return value


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not a number") from None
    if value <= 0:
        raise ConfigError(f"{key}={raw!r} must be greater than zero")
    return value


def _bitrate(env: Mapping[str, str], key: str, default: str) -> str:
    """``key`` as an MP3 bitrate, normalized ("128" -> "128k"), by the rule ffmpeg calls use."""
    raw = env.get(key, "").strip()
    if not raw:
        return default
    # Imported here, not at the top: every module reads config, and config need not load the
    # ffmpeg layer (nor risk an import cycle with it) just to be imported.
    from vid2mp3.errors import InvalidInput
    from vid2mp3.media.encoding import BITRATE_CHOICES, parse_bitrate

    try:
        return parse_bitrate(raw)
    except InvalidInput:
        raise ConfigError(
            f"{key}={raw!r} is not an MP3 bitrate; use one of {BITRATE_CHOICES}"
        ) from None


def _flag(env: Mapping[str, str], key: str) -> bool:
    return env.get(key, "").strip().lower() in {"1", "true", "yes", "on"}


def _choice(env: Mapping[str, str], key: str, allowed: tuple[str, ...]) -> str:
    """``key``'s value, one of ``allowed`` or empty (the default)."""
    value = env.get(key, "").strip().lower()
    if value and value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)} (or unset), not {value!r}")
    return value


@dataclass(frozen=True)
class Config:
    """The settings of one process. Build with ``Config.from_env()``; never mutated."""

    home: Path
    database_url: str
    storage_url: str
    events_url: str
    smtp_url: str
    mail_from: str
    public_url: str
    jwt_secret: str = field(repr=False)
    openai_base_url: str = ""
    openai_api_key: str = field(default="", repr=False)
    transcribe_model: str = "whisper-1"
    summary_model: str = "gpt-4o-mini"
    # Who transcribes: "local" (faster-whisper), "openai" (TRANSCRIBE_MODEL at OPENAI_BASE_URL),
    # "off"; empty picks local when the speech extra is installed, else openai when configured.
    transcriber: str = ""
    # The local model: a size (tiny, base, small, ...) or a model folder (docs/speech.md).
    whisper_model: str = "base"
    ai_timeout: float = 120.0
    ai_max_chars: int = 48_000
    ffmpeg_binary: str = ""
    default_bitrate: str = "192k"
    max_upload_bytes: int = 2 * GIB
    multipart_threshold: int = 64 * MIB
    token_ttl: int = 24 * 3600
    upload_token_ttl: int = 2 * 3600
    # Presigned S3 upload URLs cannot be revoked (not by complete, not by deleting the job),
    # so they live shorter than the upload token, which the jobs function checks per request.
    upload_url_ttl: int = 3600
    # The longest audio converted (12 h); longer files fail at probe time, ffmpeg stops past it.
    max_duration_seconds: int = 12 * 3600
    max_attempts: int = 5
    # First retry delay of the brokers we run (memory bus, local dispatcher); doubles per attempt.
    retry_base_seconds: float = 2.0
    # Short enough that a dead worker's job is claimable again within the retry schedule
    # (2+4+8+16 s with the defaults); the heartbeat renews it every lease/4.
    job_lease_seconds: int = 20
    # A job whose worker died this many times in a row fails ("the service kept stopping"),
    # so a file that crashes every worker cannot keep the service busy forever.
    max_takeovers: int = 3
    # On SIGTERM, work in flight gets this long to finish before it is handed back; keep it
    # below the platform's terminationGracePeriodSeconds / write_timeout (docs/deploy.md).
    shutdown_grace_seconds: float = 20.0
    # How often the outbox relay looks for unpublished events and abandoned steps.
    relay_interval_seconds: float = 1.0
    cors_origins: tuple[str, ...] = ()
    allow_private_webhooks: bool = False
    # The header a proxy in front of the functions sets to the client's address (its right-most
    # entry is read); empty: the connection's address. Only name a header that proxy overwrites.
    trusted_proxy_header: str = ""
    event_source: str = "/vid2mp3"

    @property
    def embedded(self) -> bool:
        """True when every backend is the zero-server default."""
        return (
            self.database_url.startswith("sqlite:")
            and self.storage_url.startswith("file:")
            and self.events_url.startswith("memory:")
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Read the settings; raises ``ConfigError`` naming the key that is wrong."""
        env = os.environ if env is None else env
        home = Path(env.get("VID2MP3_HOME") or Path.home() / ".vid2mp3").expanduser()
        database_url = read_secret(env, "DATABASE_URL") or f"sqlite:///{home / 'vid2mp3.db'}"
        storage_url = read_secret(env, "STORAGE_URL") or f"file://{home / 'blobs'}"
        # Knative's SinkBinding injects K_SINK; when it is there, it is where events go.
        events_url = env.get("K_SINK") or read_secret(env, "EVENTS_URL") or "memory://"
        cfg = cls(
            home=home,
            database_url=database_url,
            storage_url=storage_url,
            events_url=events_url,
            smtp_url=read_secret(env, "SMTP_URL"),
            mail_from=env.get("MAIL_FROM") or "vid2mp3 <no-reply@vid2mp3.local>",
            public_url=(env.get("PUBLIC_URL") or "http://127.0.0.1:8080").rstrip("/"),
            jwt_secret=read_secret(env, "JWT_SECRET"),
            openai_base_url=env.get("OPENAI_BASE_URL", ""),
            openai_api_key=read_secret(env, "OPENAI_API_KEY"),
            transcribe_model=env.get("TRANSCRIBE_MODEL") or "whisper-1",
            summary_model=env.get("SUMMARY_MODEL") or "gpt-4o-mini",
            transcriber=_choice(env, "TRANSCRIBER", TRANSCRIBERS),
            whisper_model=env.get("WHISPER_MODEL", "").strip() or "base",
            ai_timeout=_float(env, "AI_TIMEOUT", 120.0),
            ai_max_chars=_int(env, "AI_MAX_CHARS", 48_000),
            ffmpeg_binary=env.get("FFMPEG_BINARY", ""),
            default_bitrate=_bitrate(env, "DEFAULT_BITRATE", "192k"),
            max_upload_bytes=_int(env, "MAX_UPLOAD_BYTES", 2 * GIB),
            multipart_threshold=_int(env, "MULTIPART_THRESHOLD", 64 * MIB),
            token_ttl=_int(env, "TOKEN_TTL", 24 * 3600),
            upload_token_ttl=_int(env, "UPLOAD_TOKEN_TTL", 2 * 3600),
            upload_url_ttl=_int(env, "UPLOAD_URL_TTL", 3600),
            max_duration_seconds=_int(env, "MAX_DURATION_SECONDS", 12 * 3600),
            max_attempts=_int(env, "MAX_ATTEMPTS", 5),
            retry_base_seconds=_float(env, "RETRY_BASE_SECONDS", 2.0),
            job_lease_seconds=_int(env, "JOB_LEASE_SECONDS", 20),
            max_takeovers=_int(env, "MAX_TAKEOVERS", 3),
            shutdown_grace_seconds=_float(env, "SHUTDOWN_GRACE_SECONDS", 20.0),
            relay_interval_seconds=_float(env, "RELAY_INTERVAL_SECONDS", 1.0),
            cors_origins=tuple(o.strip() for o in env.get("CORS_ORIGINS", "").split(",") if o),
            allow_private_webhooks=_flag(env, "ALLOW_PRIVATE_WEBHOOKS"),
            trusted_proxy_header=env.get("TRUSTED_PROXY_HEADER", "").strip(),
            event_source=env.get("EVENT_SOURCE") or "/vid2mp3",
        )
        if not cfg.jwt_secret:
            if not cfg.embedded:
                raise ConfigError(
                    "JWT_SECRET (or JWT_SECRET_FILE) must be set when any backend is not the "
                    "embedded default; refusing to start with a generated secret"
                )
            cfg = _with_embedded_secret(cfg)
        return cfg


def _with_embedded_secret(cfg: Config) -> Config:
    """The embedded mode generates a secret once and keeps it in its state folder."""
    from dataclasses import replace

    from vid2mp3 import private_files

    path = cfg.home / "jwt_secret"
    if not path.exists():
        private_files.make_dirs(cfg.home)  # 0700: the embedded state is the owner's alone
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return replace(cfg, jwt_secret=path.read_text().strip())
