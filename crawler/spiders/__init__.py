"""Spiders of the standalone crawler."""
