"""The training image's platform, whatever the host builds it: its wheels are
resolved for it, its config says so, and every layer refuses binaries for any
other machine. The Debian lock (Stack/base/debian.lock.json) is for it too."""

IMAGE_PLATFORM = "linux/amd64"
