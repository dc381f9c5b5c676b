"""Module m06 of the liveapp package."""
VERSION = "1"
