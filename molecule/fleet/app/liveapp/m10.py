"""Module m10 of the liveapp package."""
VERSION = "1"
