"""convert: CloudEvent io.vid2mp3.video.uploaded → the job's MP3, then audio.converted."""

import functions_framework
from cloudevents.http.event import CloudEvent

from vid2mp3 import conversion, entrypoints, triggers


@functions_framework.cloud_event
def convert(cloud_event: CloudEvent) -> None:
    entrypoints.handle_event(
        cloud_event, conversion.handle_video_uploaded, triggers.TRIGGERS["convert"]
    )
