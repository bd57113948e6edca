"""The rete adapter: event triggers compiled into durable_rules rulesets, and matched in batches.

The only package of the project that imports durable_rules, and only ``_gateway`` calls it;
``runtime`` holds the public :class:`~automations.engine.rete.runtime.ReteMatcher`. ``compiler``,
``packing``, ``lifecycle``, ``names`` and ``stats`` are pure. Design: ``docs/design/rete.md``.
"""
