"""The Alembic migrations. They live here, at the top of the repository, and ship inside the
package as ``gateway.migrations`` (pyproject.toml maps this directory to it), which is where
:func:`gateway.db.alembic_config` finds them.
"""
