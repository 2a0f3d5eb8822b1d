"""Helpers other sites can reuse to test their fastmon integration (fastmon's own tests use them
too): the testbed's example messages and STF names (``messages``), STFs announced as if their
messages had arrived (``announcing``), a STOMP test client (``broker``), a stand-in for
swf-monitor's REST API (``swf_monitor``), the Django site skeleton (``site``), long-running
commands in subprocesses (``processes``), free ports and a TCP relay a test can cut
(``network``), ETF1 content written and decoded independently (``content``), pages in a real
headless Chromium (``browser``), a real reverse proxy with an SSO header (``proxy``), and
waiting on a condition rather than for a fixed time (``waiting``)."""
