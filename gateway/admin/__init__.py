"""The operator's admin API under ``/admin`` (ADMIN-API.md)."""
