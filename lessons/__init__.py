"""Lesson content and the code that loads and checks it (none yet)."""
