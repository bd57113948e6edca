"""Actions: sandboxed templates, invocation planning, lifecycle events and the outbox dispatcher."""
