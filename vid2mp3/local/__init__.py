"""The laptop platform: ``vid2mp3 up`` with its OpenFaaS-style gateway, the streaming proxy and
process supervisor of ``--processes``, and the web UI (``static/``).

It lives inside the package (not in a top-level ``local/``) so ``pip install .`` alone gives a
working ``vid2mp3 up``. It builds on ``vid2mp3.runtime``; nothing in production imports it.
"""
