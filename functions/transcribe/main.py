"""transcribe: CloudEvent io.vid2mp3.audio.converted → the job's transcript, then audio.transcribed."""

import functions_framework
from cloudevents.http.event import CloudEvent

from vid2mp3 import entrypoints, transcription, triggers


@functions_framework.cloud_event
def transcribe(cloud_event: CloudEvent) -> None:
    entrypoints.handle_event(
        cloud_event, transcription.handle_audio_converted, triggers.TRIGGERS["transcribe"]
    )
