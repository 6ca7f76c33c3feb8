"""Thin function views, one module per topic."""
