"""Everything fastmon says to and reads from swf-monitor: its REST client (``client``), the feed
of its fastmon-files table and the status sync back (``feed``), the runs' workflow parameters
read from it (``parameters``), and the heartbeat every testbed agent sends (``heartbeat``)."""
