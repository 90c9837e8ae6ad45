"""Event sink adapters: ``memory.py`` (memory://), ``amqp.py`` (amqp://), ``http.py`` (http(s)://)."""
