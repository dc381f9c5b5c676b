"""The example CGI application deployed by `make demo` and the Molecule scenarios."""
__version__ = "1.0"
