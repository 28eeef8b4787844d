"""Storage: the SQLAlchemy schema, its migrations, and the repositories the actions use."""
