"""What runs in production: function loading, the container entry and its health endpoints,
the gunicorn settings of the images, the RabbitMQ dispatcher and the outbox relay.

Nothing here imports the laptop platform (``vid2mp3.local``) or the CLI commands
(``vid2mp3.commands``); both build on this package.
"""
