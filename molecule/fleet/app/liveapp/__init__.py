"""A package whose every module holds its own version."""
