"""Tests of knowledge retrieval."""
