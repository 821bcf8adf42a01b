"""Settings and defaults. Read once from ``ABOHUB_*`` environment variables."""

from config.settings import Settings, SettingsError, load_settings

__all__ = ["Settings", "SettingsError", "load_settings"]
