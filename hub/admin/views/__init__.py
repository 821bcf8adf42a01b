"""One module per page group; each adds its routes to the admin blueprint."""
