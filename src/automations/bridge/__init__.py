"""Ingest bridges: feed events from other systems into the engine (see ``prefect_events``)."""
