"""Ingest: validates events over HTTP and hands them to Kafka, answering only after acks=all."""
