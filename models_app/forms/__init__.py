"""Forms own validation, one module per topic."""
