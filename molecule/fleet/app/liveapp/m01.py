"""Module m01 of the liveapp package."""
VERSION = "1"
