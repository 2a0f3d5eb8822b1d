"""fastmon's REST API (DRF): swf-monitor-compatible fastmon-files, and far more."""
