"""Module m05 of the liveapp package."""
VERSION = "1"
