"""Connectors to external systems. Each imports only ``connectors.base`` and third parties."""
