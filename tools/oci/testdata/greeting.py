"""A tiny first-party library for the small test image."""


def greet(name: str) -> str:
    return f"hello, {name}"
