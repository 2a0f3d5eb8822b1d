"""Transports: how fastmon talks to a broker. ``base`` is what they share, ``stomp`` speaks to
the testbed's ActiveMQ, ``inprocess`` is the demo's broker in memory."""
