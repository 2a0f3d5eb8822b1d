"""The embedded-default site: fastmon on SQLite with no external services."""
