"""pytest plugin: fixtures of the plugin authors' kit (being written)."""
