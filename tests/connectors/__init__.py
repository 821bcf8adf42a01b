"""Tests of the connector toolkit: the HTTP client, error classification, rate limiting."""
