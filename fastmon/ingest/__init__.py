"""Ingest: the one door through which broker messages become rows.

``pipeline`` runs a batch in one transaction, ``runs`` and ``stfs`` apply run lifecycle messages
and STF announcements on their natural keys, and ``replay`` sends a dead letter through the
same door again. What a message looks like on the wire is ``fastmon.inbound``'s.
"""
