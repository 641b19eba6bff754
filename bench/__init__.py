"""Load benchmark: an asyncio load generator and a runner that drives gunicorn on PostgreSQL."""
