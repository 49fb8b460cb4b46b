"""Command-line tools for people who run studies: the `kubectl study` plugin."""
