"""Sampling: which STFs and which of their Time Frames (``policy``, pure), the policy ledger
(``policies``), reading the sampled byte ranges (``reading``), the samples stored with what
they send (``samples``), the service a worker runs (``service``) and how STFs reach it
(``dispatch``)."""
