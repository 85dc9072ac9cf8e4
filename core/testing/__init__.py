"""The plugin authors' kit (being written)."""
