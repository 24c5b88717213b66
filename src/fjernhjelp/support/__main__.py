"""The one-file client's entry point (``make support-client`` builds it from this file)."""

import sys

from fjernhjelp.support.client import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
