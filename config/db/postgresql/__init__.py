"""PostgreSQL backend: Django's, with a round-trip-free health check and prepared hot statements."""
