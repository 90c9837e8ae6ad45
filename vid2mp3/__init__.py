"""vid2mp3: video in, MP3 (plus summary and email) out, as stateless functions."""

__version__ = "0.1.0"
