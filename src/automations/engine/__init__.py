"""The trigger engine: pure code that decides when automations fire.

Imports neither gRPC nor SQLAlchemy. Only ``engine.rete`` imports durable_rules.

Modules:

* ``matching``: the :class:`~automations.engine.matching.Matcher` seam (which triggers an event
  touches); ``python_matcher`` implements it in Python, ``rete`` on durable_rules.
* ``buckets``: Prefect's per-(trigger, for_each key) bucket state machine, reactive and proactive.
* ``composite``: compound and sequence triggers.
* ``ordering``: dedup, log-write filtering and causal ordering (``follows``).
* ``clock``: the event clock.
* ``state``: :class:`~automations.engine.state.Step` and
  :class:`~automations.engine.state.StateRecord`, what the engine hands the store; ``records``
  writes the engine's state as records, ``restore`` reads them back.
* ``trigger_engine``: :class:`~automations.engine.trigger_engine.TriggerEngine`, the facade.
* ``simulation``: runs conformance scenarios through the same engine on a virtual clock.
"""
