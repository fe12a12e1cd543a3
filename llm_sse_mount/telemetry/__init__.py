"""Telemetry: the observer seam the core calls (:mod:`.base`), and the observers behind it:
OpenTelemetry (:mod:`.otel`, extra ``otel``), Prometheus (:mod:`.prometheus`, extra
``prometheus``) and one log line per stream (:mod:`.logs`). Importing this package imports
neither optional dependency."""
