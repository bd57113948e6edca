"""Domain model: frozen dataclasses shared by every layer, and the error tree.

Nothing here imports gRPC, SQLAlchemy or durable_rules. The three model families of the engine are
proto messages (``api/`` and ``actions/`` only), these dataclasses (everywhere) and ORM rows
(``store/`` only); explicit converters sit at each boundary.
"""
