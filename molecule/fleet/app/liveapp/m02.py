"""Module m02 of the liveapp package."""
VERSION = "1"
