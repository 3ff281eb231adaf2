"""Stoker agent."""
