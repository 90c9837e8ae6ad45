"""Adapters of the ``Summarizer`` port (speech to text, then a summary of the text)."""
