"""Cluster mode: several replicas on PostgreSQL and NATS JetStream, with partitioned evaluation.

``routing`` decides which partition does what; ``partitioned`` runs a replica's owned partitions
(one trigger engine each, one matcher, one event clock). The design: ``docs/design/cluster.md``.
"""
