"""The ``vid2mp3`` command: ``convert`` a video here and now, bring the platform ``up``, run the
event ``dispatch``er alone, or read and replay ``events``.

Imports stay inside the commands so ``vid2mp3 --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from vid2mp3 import __version__
from vid2mp3.errors import Vid2mp3Error  # no imports of its own: --help stays instant


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vid2mp3",
        description="Video to MP3 (plus a summary and an email), as serverless functions.",
    )
    parser.add_argument("--version", action="version", version=f"vid2mp3 {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    convert = commands.add_parser(
        "convert",
        help="convert one video to MP3 through the functions, on this machine",
        description="Runs VIDEO through upload-init, jobs, convert, transcribe, summarize and "
        "notify (the same functions production runs), then writes the MP3 and, next to it, the "
        "transcript.",
    )
    convert.add_argument("video", help="the video (or audio) file to convert")
    convert.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="the MP3 file, or a folder to write it in (a folder when it exists or ends in /); "
        "default: VIDEO with .mp3",
    )
    convert.add_argument(
        "--force", action="store_true", help="overwrite the MP3 when it already exists"
    )
    quality = convert.add_mutually_exclusive_group()
    quality.add_argument("--bitrate", help="constant bitrate such as 128k, 192k (default), 320k")
    quality.add_argument(
        "--quality",
        type=int,
        choices=range(10),
        metavar="0-9",
        help="VBR quality, 0 best, 9 smallest",
    )
    convert.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    convert.add_argument(
        "--transcript",
        default="txt,srt",
        metavar="FORMATS",
        help="transcript files to write next to the MP3, of txt, srt, vtt, json (default txt,srt)",
    )
    convert.add_argument(
        "--no-transcript", action="store_true", help="do not transcribe (and write no transcript)"
    )
    convert.add_argument("--language", help="the language spoken (en, de, ...); default: detected")

    up = commands.add_parser(
        "up",
        help="serve every function over HTTP at /function/<name> (OpenFaaS gateway paths)",
    )
    up.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    up.add_argument(
        "--processes",
        action="store_true",
        help="run each function as its own functions-framework process, as production does "
        "(default: all in this process)",
    )

    dispatch = commands.add_parser(
        "dispatch",
        help="only deliver events from RabbitMQ (EVENTS_URL=amqp://...) to functions over HTTP",
        description="Plays the broker's part: one queue per triggered function, delivery as "
        "binary-mode CloudEvents to URL/<function>, retries with backoff, dead letters.",
    )
    dispatch.add_argument(
        "--invoke-url",
        default="http://127.0.0.1:8080/function",
        metavar="URL",
        help="base URL of the functions (default http://127.0.0.1:8080/function)",
    )

    commands.add_parser(
        "relay",
        help="only the outbox relay: publish unsent events, re-announce abandoned steps",
        description="Publishes outbox events nobody published (the broker was down, or the "
        "publisher died) and announces again the steps whose worker died; several may run.",
    )

    ev = commands.add_parser("events", help="read the event log, replay events")
    ev_commands = ev.add_subparsers(dest="events_command", required=True, metavar="ACTION")
    ev_list = ev_commands.add_parser("list", help="the latest events and their deliveries")
    ev_list.add_argument("--json", action="store_true", help="print a JSON array")
    ev_list.add_argument("--limit", type=int, default=100, help="how many (default 100)")
    ev_show = ev_commands.add_parser("show", help="one event, its data and every delivery")
    ev_show.add_argument("id", help="the event id")
    replay = ev_commands.add_parser(
        "replay",
        help="send events again: by id (from the log), from a file, or the dead letters",
        description="Sends events again, to a function URL (--to) or through the broker "
        "(--broker, the default). Handlers are idempotent on the event id.",
    )
    replay.add_argument("ids", nargs="*", metavar="ID", help="event ids from the event log")
    replay.add_argument(
        "--file", metavar="FILE", help="structured CloudEvents: JSON lines, or a JSON event/list"
    )
    replay.add_argument(
        "--dead-letters",
        action="store_true",
        help="every event in the dispatcher's dead-letter queues (each back to its function)",
    )
    where = replay.add_mutually_exclusive_group()
    where.add_argument("--to", metavar="URL", help="POST each event (binary mode) to URL")
    where.add_argument(
        "--broker", action="store_true", help="publish through EVENTS_URL (the default)"
    )
    return parser


def _events(args: argparse.Namespace) -> int:
    from vid2mp3.commands import events as event_commands

    if args.events_command == "list":
        return event_commands.run_list(as_json=args.json, limit=args.limit)
    if args.events_command == "show":
        return event_commands.run_show(args.id)
    return event_commands.run_replay(
        args.ids, file=args.file, dead_letters=args.dead_letters, to=args.to
    )


def _run(args: argparse.Namespace) -> int:
    if args.command == "convert":
        from vid2mp3.commands.convert import run_convert

        return run_convert(
            args.video,
            output=args.output,
            bitrate=args.bitrate,
            quality=args.quality,
            progress=not args.no_progress,
            force=args.force,
            transcript=None if args.no_transcript else args.transcript,
            language=args.language,
        )
    if args.command == "up":
        from vid2mp3.local.server import run_up

        return run_up(host=args.host, port=args.port, processes=args.processes)
    if args.command == "dispatch":
        from vid2mp3.runtime.daemons import run_dispatch

        return run_dispatch(invoke_url=args.invoke_url)
    if args.command == "relay":
        from vid2mp3.runtime.daemons import run_relay

        return run_relay()
    if args.command == "events":
        return _events(args)
    raise AssertionError(f"unhandled command {args.command}")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(_parser().parse_args(argv))
    except KeyboardInterrupt:
        print("vid2mp3: interrupted", file=sys.stderr)
        return 130
    except Vid2mp3Error as exc:
        print(f"vid2mp3: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        # The machine refused something (disk full, permissions): a fact to report, not a bug
        # to debug, so one line rather than a traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"vid2mp3: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
