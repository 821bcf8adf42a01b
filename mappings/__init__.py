"""Field mapping, transforms, change detection and conflict policies."""
