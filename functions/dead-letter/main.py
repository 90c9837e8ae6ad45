"""dead-letter: receives an event that ran out of delivery attempts, at /<function>.

It settles the job so nothing stays in progress forever: the broker's dead-letter sink (Knative
``delivery.deadLetterSink``, the local dispatcher's DLQ) points here, with the name of the
function that kept failing as the path.
"""

import flask
import functions_framework

from vid2mp3 import dead_letters, entrypoints
from vid2mp3.errors import InvalidInput


@functions_framework.http
@entrypoints.http_errors
def dead_letter(request: flask.Request) -> flask.Response:
    entrypoints.require_method(request, "POST")
    function = request.path.strip("/")
    if function not in dead_letters.POLICIES:
        raise InvalidInput(
            f"path must name the failing function: one of {sorted(dead_letters.POLICIES)}"
        )
    event = entrypoints.signed_event(request)
    outcome = dead_letters.settle(entrypoints.services(), event, function)
    return entrypoints.json_response({"outcome": outcome})
