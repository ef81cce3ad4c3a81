"""Operating the gateway: metrics (``/metrics``), structured logs and request ids."""
