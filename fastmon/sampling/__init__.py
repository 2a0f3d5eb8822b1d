"""Sampling: which STFs and which of their Time Frames (``policy``, pure), the policy ledger
(``ledger``), reading the sampled byte ranges (``reading``, over ``roots`` and ``clients``, with
``checksums``), the samples stored with what they send (``samples``), the service a worker runs
(``service``) and how STFs reach it (``dispatch``)."""
