"""The trigger engine: pure code that decides when automations fire.

Imports neither gRPC nor SQLAlchemy. Only ``engine.rete`` imports durable_rules.
"""
