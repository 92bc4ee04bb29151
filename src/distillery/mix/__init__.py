"""Buckets, the held-out eval split, and the weighted production mix and curriculum phases."""
