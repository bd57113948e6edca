"""Incoming webhooks: HTTP requests to ``/hooks/<slug>`` turned into events, acknowledged once durable.

The request's way through, one module each: ``http_app`` (the ASGI app on uvicorn:
methods, the body limit, status codes), ``receiver`` (the webhook's lookup in ``directory``, its
rate limit in ``rate_limit``, authentication in ``signatures``, the Azure Event Grid handshake,
then publishing and the answer), ``processing`` (on a worker thread of ``workers``: the template
context from ``requests``, the render, and the events built and validated by ``rendering``), and
``deliveries`` (the delivery history, recorded in batches). The writer, the store and the event
log's row encoder are given by the composition root (``automations.server``): this package knows
neither the pipeline nor the database.
"""
