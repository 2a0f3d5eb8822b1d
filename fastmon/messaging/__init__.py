"""How fastmon talks to the testbed's broker: message schema, transports and the outbox."""
