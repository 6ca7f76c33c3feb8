"""A file in the original tool's JSON format, as the import tests read it."""

from __future__ import annotations

# An export from the original tool: only these nine fields, description and metadata may be null.
ORIGINAL_EXPORT = {
    "version": "1.0",
    "export_date": "2025-03-01T10:00:00Z",
    "count": 2,
    "templates": [
        {
            "name": "Residual sweep",
            "description": None,
            "layer_indices": [0, 4, 8],
            "hook_types": ["residual"],
            "max_samples": 1000,
            "batch_size": 32,
            "top_k_examples": 20,
            "is_favorite": True,
            "extra_metadata": None,
        },
        {
            "name": "MLP probe",
            "description": "mid layers",
            "layer_indices": [5, 6],
            "hook_types": ["mlp", "attention"],
            "max_samples": None,
            "batch_size": 8,
            "top_k_examples": 10,
            "is_favorite": False,
            "extra_metadata": {"author": "ada"},
        },
    ],
}
