"""notify: CloudEvents audio.converted / audio.summarized / job.failed → one email each."""

import functions_framework
from cloudevents.http.event import CloudEvent

from vid2mp3 import entrypoints, notifications, triggers


@functions_framework.cloud_event
def notify(cloud_event: CloudEvent) -> None:
    entrypoints.handle_event(cloud_event, notifications.handle, triggers.TRIGGERS["notify"])
