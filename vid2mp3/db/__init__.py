"""The SQL port: users, jobs, processed event ids, the outbox and sent notifications.

``Database`` adapters (``sqlite.py``, ``mysql.py``) only know how to connect; the SQL, written
once in portable form, lives in ``repositories.py`` and runs inside a ``UnitOfWork``.
"""
