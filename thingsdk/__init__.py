"""thingsdk: an SDK for things that buy for themselves."""

__version__ = "0.1.0"
