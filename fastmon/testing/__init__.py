"""Fixtures other sites can reuse to test their fastmon integration."""
