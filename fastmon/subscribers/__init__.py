"""Subscribers: parties that registered (REST, admin or a STOMP control request) for copies of
fastmon's messages. ``rules`` says what a registration may say and which samples each one
gets; ``service`` stores them; ``control`` answers the control requests on the broker."""
