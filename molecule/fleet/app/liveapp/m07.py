"""Module m07 of the liveapp package."""
VERSION = "1"
