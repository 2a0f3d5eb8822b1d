"""fastmon: fast monitoring of Super Time Frames for the ePIC streaming workflow testbed."""

__version__ = "0.2.0"
