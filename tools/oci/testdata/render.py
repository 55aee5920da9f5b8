"""A tiny program whose two dependencies ship compiled extensions (the arm64 test image's)."""

import markupsafe
import yaml

if __name__ == "__main__":
    print(markupsafe.escape(yaml.safe_dump({"hello": "<arm64>"})))
