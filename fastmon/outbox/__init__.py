"""Everything fastmon sends to the broker, and how it leaves: the bodies (``bodies``, one home
for every outbound format) and the relay (``relay``). Rows are written in the transaction of the
data they describe, so nothing is sent for rolled-back data and nothing committed is lost."""
