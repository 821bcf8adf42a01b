"""HubSpot CRM connector, and a simulator of HubSpot's API for tests, benchmarks and the demo."""
