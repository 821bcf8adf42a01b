"""The service layer: every change to the store goes through a handler here."""
