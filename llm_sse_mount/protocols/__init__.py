"""Client protocols: one module each (routes, body parsing, frame encoding, error shape)."""
