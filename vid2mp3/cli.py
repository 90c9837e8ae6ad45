"""The ``vid2mp3`` command: ``convert`` a video here and now, or bring the platform ``up``.

Imports stay inside the commands so ``vid2mp3 --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from vid2mp3 import __version__


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
        description="Runs VIDEO through upload-init, jobs, convert, summarize and notify "
        "(the same functions production runs), then writes the MP3.",
    )
    convert.add_argument("video", help="the video (or audio) file to convert")
    convert.add_argument("-o", "--output", help="where to write the MP3 (default: VIDEO with .mp3)")
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

    up = commands.add_parser(
        "up",
        help="serve every function over HTTP at /function/<name> (OpenFaaS gateway paths)",
    )
    up.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from vid2mp3.errors import Vid2mp3Error

    try:
        if args.command == "convert":
            from vid2mp3.local.convert_command import run_convert

            return run_convert(
                args.video,
                output=args.output,
                bitrate=args.bitrate,
                quality=args.quality,
                progress=not args.no_progress,
            )
        if args.command == "up":
            from vid2mp3.local.server import run_up

            return run_up(host=args.host, port=args.port)
    except Vid2mp3Error as exc:
        print(f"vid2mp3: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vid2mp3: interrupted", file=sys.stderr)
        return 130
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
