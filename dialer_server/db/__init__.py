"""PostgreSQL, the only store: the connection pool, the schema's migrations, the named
queries each module runs, and what "the database is away" means (``outage.py``)."""
