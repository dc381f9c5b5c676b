"""Module m09 of the liveapp package."""
VERSION = "1"
