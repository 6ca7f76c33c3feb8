"""The Templates tab: one module per topic (the list, editing, import/export)."""
