"""A stand-in for swf-monitor's own app in the host-shaped test site: models named as its are
(``FastMonFile``, ``Run``, ``StfFile``, ``Subscriber``), their REST API at the root paths it owns,
its own serializers' schema component names, and a base template fastmon's pages sit in."""
