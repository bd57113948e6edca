"""The pipeline: ingest -> order -> match -> state -> outbox, committed by a single writer.

``writer.Writer`` owns the one thread that writes to the database and drives the trigger engine
(so every durable_rules call happens on that thread); ``simulate`` reuses the same engine code on a
virtual clock.
"""
