"""The ipywidgets panel (state model + view)."""
