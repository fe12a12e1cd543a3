"""Client protocols: one module each (see DESIGN.md)."""
