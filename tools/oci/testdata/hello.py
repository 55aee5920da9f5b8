"""Entry point of the small test image: imports first-party code and a wheel."""

import zlib_ng  # a third-party wheel, so group 3 is not empty

from tools.oci.testdata.greeting import greet

if __name__ == "__main__":
    print(greet("image"), zlib_ng.__name__)
