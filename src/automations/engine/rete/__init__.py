"""The rete adapter: event triggers compiled into durable_rules rulesets, and matched in batches.

The only package of the project that imports durable_rules (``runtime``); ``compiler`` is pure.
"""
