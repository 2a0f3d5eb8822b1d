"""run_fastmon's process: the consumer loop (``consumer``), the ingest beside it
(``ingest_worker``), the frames between them (``intake``), its counts (``stats``), its database
connections (``connections``), its reports on itself (``heartbeat``), watch mode (``watch``) and
its console log (``console``)."""
