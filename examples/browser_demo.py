"""Browser demo: an echo server plus a page whose JavaScript talks to it.

Chrome accepts the server's self-signed certificate because the page pins it
by SHA-256 (serverCertificateHashes); the certificate is ECDSA P-256 and
valid for less than 14 days, as Chrome requires.

    python examples/browser_demo.py      # then open http://127.0.0.1:8080/
"""

import sys

from pywebtransport.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", "--browser-demo", *sys.argv[1:]]))
