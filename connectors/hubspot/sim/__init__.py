"""Parts of the HubSpot simulator; the entry point is :mod:`connectors.hubspot.simulator`."""
