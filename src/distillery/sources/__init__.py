"""Ingest: adapters that turn public dataset layouts into records."""
