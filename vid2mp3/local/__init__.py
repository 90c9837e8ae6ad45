"""The local platform: load the functions, serve them behind an OpenFaaS-style gateway.

It lives inside the package (not in a top-level ``local/``) so ``pip install .`` alone gives a
working ``vid2mp3 up``.
"""
