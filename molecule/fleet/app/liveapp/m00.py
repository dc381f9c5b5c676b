"""Module m00 of the liveapp package."""
VERSION = "1"
