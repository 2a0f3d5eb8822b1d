"""Realistic testbed traffic for fastmon: runs of STF announcements (``shapes``), the STF files
behind them (``files``), played at a chosen rate (``player``) and sent to a broker
(``sending``)."""
