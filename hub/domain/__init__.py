"""Pure domain rules: no database, no web, nothing of ours imported."""
