"""Which function receives which event type: the one table every platform is generated from.

The in-process bus, the local dispatcher, ``stack.yml`` topics and the Knative Triggers all
follow it (a drift test keeps them equal).
"""

from vid2mp3.events import (
    AUDIO_CONVERTED,
    AUDIO_SUMMARIZED,
    AUDIO_TRANSCRIBED,
    JOB_FAILED,
    VIDEO_UPLOADED,
)

TRIGGERS: dict[str, tuple[str, ...]] = {
    "convert": (VIDEO_UPLOADED,),
    "transcribe": (AUDIO_CONVERTED,),
    "summarize": (AUDIO_TRANSCRIBED,),
    "notify": (AUDIO_CONVERTED, AUDIO_SUMMARIZED, JOB_FAILED),
}

#: Receives an event that exhausted its delivery attempts, so its job ends ``failed``.
DEAD_LETTER_FUNCTION = "dead-letter"

HTTP_FUNCTIONS = ("register", "login", "validate", "upload-init", "jobs", "settings", "account")
EVENT_FUNCTIONS = (*TRIGGERS, DEAD_LETTER_FUNCTION)
ALL_FUNCTIONS = (*HTTP_FUNCTIONS, *EVENT_FUNCTIONS)


def subscribers(event_type: str) -> list[str]:
    """The functions triggered by ``event_type``, in table order."""
    return [name for name, types in TRIGGERS.items() if event_type in types]
