"""Recipes: the scripts that run inside guests (features and applications)."""
