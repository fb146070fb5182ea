"""Pipelines seen from the storage cards: the jobs a Target's Sync started, a Source commit's provenance."""
