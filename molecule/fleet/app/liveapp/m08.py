"""Module m08 of the liveapp package."""
VERSION = "1"
