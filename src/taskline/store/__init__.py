"""Persistence: tables, migrations, the database handle and repositories."""
