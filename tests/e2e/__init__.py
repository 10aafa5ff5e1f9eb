"""End-to-end tests: the Procfile's processes for real, on Redis and PostgreSQL, with faults."""
