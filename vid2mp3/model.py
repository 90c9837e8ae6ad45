"""The domain's values: users, jobs and the states a job moves through."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    AWAITING_UPLOAD = "awaiting_upload"
    UPLOADED = "uploaded"
    CONVERTING = "converting"
    CONVERTED = "converted"
    COMPLETED = "completed"
    FAILED = "failed"


FINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED})


class TranscriptStatus(StrEnum):
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


class SummaryStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class User:
    id: str
    email: str
    password_hash: str
    created_at: float
    webhook_url: str | None = None
    #: Session tokens carry it (claim ``gen``); a password change adds one, ending older ones.
    session_generation: int = 0


@dataclass(frozen=True)
class ConversionOptions:
    """What the user asked for; empty means the service default (192k CBR, MP3 copied as is,
    the language detected)."""

    bitrate: str | None = None
    quality: int | None = None
    #: The language the transcriber is told the speech is in (a Whisper code); None detects it.
    language: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ConversionOptions:
        return cls(
            bitrate=raw.get("bitrate"), quality=raw.get("quality"), language=raw.get("language")
        )


@dataclass(frozen=True)
class Job:
    id: str
    user_id: str
    filename: str
    content_type: str
    size: int
    video_key: str
    state: JobState
    created_at: float
    updated_at: float
    options: ConversionOptions = field(default_factory=ConversionOptions)
    progress: int = 0
    error: str | None = None
    mp3_key: str | None = None
    mp3_size: int | None = None
    mp3_duration: float | None = None
    mp3_bitrate: int | None = None
    summary_status: str | None = None
    summary: str | None = None
    category: str | None = None
    context_truncated: bool | None = None
    summary_reason: str | None = None
    attempts: int = 0
    transcribe_model: str | None = None
    summary_model: str | None = None
    # The upload ``complete`` checked, as S3 names it (ETag; VersionId on a versioned bucket),
    # so the converter reads exactly that object. None where bytes pass through the functions.
    video_etag: str | None = None
    video_version: str | None = None
    #: What the transcribe step made of the MP3 (``TranscriptStatus``; None before it ran).
    transcript_status: str | None = None
    #: The transcript's language (ISO 639-1), forced or detected; None without speech.
    language: str | None = None
    transcript_reason: str | None = None

    @property
    def transcript_key(self) -> str:
        """Where the job's transcript is stored (a blob: ``speech.formats.to_json``)."""
        return f"transcripts/{self.id}.json"

    @property
    def legacy_transcript_key(self) -> str:
        """Where jobs summarized before the transcribe step kept their transcript (text)."""
        return f"transcripts/{self.id}.txt"

    @property
    def storage_prefixes(self) -> tuple[str, ...]:
        """Every key stored for this job starts with one of these (source, MP3, transcript);
        job ids are UUIDs, so no other job's key does."""
        return (f"videos/{self.id}/", f"mp3/{self.id}/", f"transcripts/{self.id}.")

    @property
    def mp3_filename(self) -> str:
        stem = self.filename.rsplit(".", 1)[0] if "." in self.filename else self.filename
        return f"{stem}.mp3"

    def public(self) -> dict[str, Any]:
        """What the owner sees (``GET /jobs/<id>``): no storage keys, no lease internals."""
        return {
            "id": self.id,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "state": str(self.state),
            "progress": self.progress,
            "error": self.error,
            "options": self.options.to_dict(),
            "mp3": (
                {
                    "filename": self.mp3_filename,
                    "size": self.mp3_size,
                    "duration": self.mp3_duration,
                    "bitrate": self.mp3_bitrate,
                }
                if self.mp3_key
                else None
            ),
            "transcript_status": self.transcript_status,
            "language": self.language,
            "transcript_reason": self.transcript_reason,
            "summary_status": self.summary_status,
            "summary": self.summary,
            "category": self.category,
            "context_truncated": self.context_truncated,
            "summary_reason": self.summary_reason,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    @staticmethod
    def options_json(options: ConversionOptions) -> str:
        return json.dumps(options.to_dict())
