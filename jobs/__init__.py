"""Queue abstraction, sync and billing jobs, scheduler, outbox relay."""
