"""Everything fastmon sends out, and how it leaves: the bodies (``bodies``, one home for every
outbound format), the broker relay (``relay``), swf-monitor's REST client (``swf_monitor``) and
the feed of its fastmon-files table (``feed``). Rows are written in the transaction of the data
they describe, so nothing is sent for rolled-back data and nothing committed is lost."""
