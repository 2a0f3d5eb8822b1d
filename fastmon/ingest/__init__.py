"""Ingest: the one door through which broker messages become rows.

``schema`` reads the testbed's inbound formats, ``messages`` names what ingest is given and
what it answers, ``pipeline`` runs a batch in one transaction, ``runs`` and ``stfs`` apply run
lifecycle messages and STF announcements on their natural keys.
"""
