"""Data quality: checks that turn what fastmon stores into run quality flags and alarms.

``verdicts`` (qualities, pure), ``framework`` (what a check is, and the facts it is given),
``builtin`` (the checks fastmon ships), ``flags`` (verdicts kept as time ranges with ALICE's
semantics, and a run's quality), ``alarms`` (raise and clear), ``evaluate`` (when checks run:
on ingest, on sampling, on a tick, at end of run)."""
