"""The built-in Practitioner mapper (being written)."""
