"""summarize: CloudEvent io.vid2mp3.audio.transcribed → summary, then audio.summarized."""

import functions_framework
from cloudevents.http.event import CloudEvent

from vid2mp3 import entrypoints, summaries, triggers


@functions_framework.cloud_event
def summarize(cloud_event: CloudEvent) -> None:
    entrypoints.handle_event(
        cloud_event, summaries.handle_audio_transcribed, triggers.TRIGGERS["summarize"]
    )
