"""Names vulture cannot see used: each is called by a framework, or is deliberately public.

``make lint`` runs vulture over src/ with this file; a name belongs here only with its reason.
"""

# ruff: noqa: B018, F821 - vulture whitelists are bare attribute expressions

# --- called by frameworks -----------------------------------------------------------------------
# grpc: servicer methods and server interceptors are looked up by name
_.StreamEvents
_.SimulateAutomation
_.intercept_service
# pydantic-settings: validators, the sources hook and its parameters, model_config
_.model_config
_._split_executors
_.settings_customise_sources
_.dotenv_settings
_.file_secret_settings
_.get_field_value
# Jinja: the sandbox's hooks, the code generator's visitor, loader API
_.visit_Concat
_.get_source
_.environment
_.intercepted_binops
_.code_generator_class
_.iterate
_.guarded_concat
# SQLAlchemy: event listeners registered by decorator; the DB-API connection's attribute
_._on_connect
_._on_begin
_.isolation_level
# grpc: the client interceptor's methods, called by the channel
_.intercept_unary_unary
_.intercept_unary_stream
_.intercept_stream_unary
_.intercept_stream_stream
# protobuf: oneof members set by assignment
_.require_any
_.require_all
_.null_value
# uvicorn: the server's signal hook (overridden: the engine handles SIGTERM) and its stop flag
_.capture_signals
_.should_exit
# the context manager protocol's parameters
_.exc_type
_.tb
# logging: a filter rewrites the record's message in place
_.msg
# the package's lazy attribute (``automations.Client``)
_.__getattr__

# --- Prefect's template API: templates read these (``{{ event.resources_in_role('x') }}``) ----
_.prefect_object_id
_.involved_resources
_.resources_in_role
_.find_resource_label
_.triggering_value

# --- the public client: methods users call --------------------------------------------------
_.create_automation
_.update_automation
_.enable_automation
_.disable_automation
_.simulate_outcome

# --- introspection read by the tests and the benchmarks -------------------------------------
# the pure-Python reference matcher the rete is checked against (differential tests, bench)
_.PythonMatcher
# the rete's counters and shape, asserted by the engine tests and printed by bench.rete_match
_.shard_posts
_.python_checks
_.rulesets_created
_.rulesets_abandoned
_.gateways_replaced
_.worker_pid
_.fallbacks
_.name_checks
_.flush
_.held_facts
_.shard_count
_.pending_rules
_.shard_sizes
_.compile_triggers
_.loaded_automations
# the conformance runners replay the corpus's Triggered firings through it; the number of metric
# groups held, asserted by the metric tests and printed by bench.metric_triggers
_.run_scenario
_.live_groups
# the checkpointer's count, every state record decoded and the schema revisions: the store
# tests compare what was written (production streams the raw rows: iter_raw, iter_all_raw)
_.checkpoints
_.load_all
_.current_revision
_.head_revision
# the simulation workers alive: the pool tests watch them being killed, recycled and replaced
_.processes

# --- cluster ownership (issue #18): the replica runtime's API, covered by tests/*/cluster --------
# SQLAlchemy: fencing's connect listener
_._bound
# the calls the replica runtime makes (creation, HRW, leases, fence, membership)
_.create_or_read
_.desired_owner
_.LeaseTiming
_.renew
_.fence
_.bound_stalled_transactions
_.prune
_.live_ids
_.dead_ids
# a replica's partitions: handing one over (cluster.partitioned)
_.drop_partition
# cluster status fields, printed by 'automations cluster status' (to_json)
_.held_for
_.up_for
_.heartbeat_age

# --- cluster log (issue #18): the JetStream log the replica runtime calls, covered by
# tests/unit/cluster and tests/integration/jetstream_log ------------------------------------------
# ingest: a request's events per partition as one batch, and its deterministic message id;
# owners relaying lifecycle events
_.encode_messages
_.encode_events
_.batch_id
# the two streams (named by the runtime), set-up, the size limit ingest splits by, owners'
# readers, status's log lag
_.RAW
_.FWD
_.ensure_streams
_.delete_streams
_.max_batch_bytes
_.open_reader
_.last_sequences
# how often a reader recreated its consumer: asserted by the tests, a metric for the runtime
_.recreated
# asyncio.Protocol callbacks of the webhook publish lane (webhooks/lane.py), called by asyncio
_.connection_made
_.data_received
_.connection_lost
