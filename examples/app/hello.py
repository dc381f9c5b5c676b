#!/usr/bin/python3
"""CGI entry point of the example application: a small status page.

Apache runs this file directly, so Python never caches it; all the work lives in the
`cgiapp` package next to it, which is imported and therefore served from __pycache__.
"""
import cgiapp.main

if __name__ == "__main__":
    cgiapp.main.run()
