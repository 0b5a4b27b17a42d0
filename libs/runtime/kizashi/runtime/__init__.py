"""Shared plumbing for the Kizashi services: settings, Kafka, database, HTTP, metrics, CLI."""
