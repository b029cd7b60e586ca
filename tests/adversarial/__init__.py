"""Adversarial repositories: hostile bytes, paths and documents against verify and prepare."""
