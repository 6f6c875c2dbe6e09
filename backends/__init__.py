"""The backends tunebridge ships. Each registers through the ``tunebridge`` entry-point group."""
