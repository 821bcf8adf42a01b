"""Abohub: the subscription store and everything around it."""
