"""Metric triggers: sliding windows over matching events, a threshold and a Triggered/Resolved state.

``windows`` (samples and exact aggregates), ``groups`` (one group's state machine), ``runtime``
(one trigger: events into samples), ``records`` (persistence), ``host`` (all metric triggers of an
engine: evaluation, scheduling, records). The trigger engine's facade reaches them through
``host.MetricEngine`` only.
"""
