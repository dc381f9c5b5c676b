"""Module m04 of the liveapp package."""
VERSION = "1"
