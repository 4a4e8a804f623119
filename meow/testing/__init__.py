"""Helpers for tests and benchmarks that must not touch a model hub."""
