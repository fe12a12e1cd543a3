"""Client protocols: each module turns stream frames into one client format's bytes."""
