"""Stoker core."""
