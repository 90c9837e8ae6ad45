"""Mailer adapters: ``outbox.py`` (no SMTP_URL: .eml files) and ``smtp.py`` (smtp://, smtps://)."""
