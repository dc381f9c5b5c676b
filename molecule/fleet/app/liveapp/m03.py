"""Module m03 of the liveapp package."""
VERSION = "1"
