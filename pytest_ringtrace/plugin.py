"""The pytest plugin (being built; see issue 3)."""
