"""Shipped inside the wheel as data; see pyproject.toml."""
