"""The ``automations`` command line: ``serve``, ``simulate`` and client commands over gRPC."""
