"""Module m11 of the liveapp package."""
VERSION = "1"
