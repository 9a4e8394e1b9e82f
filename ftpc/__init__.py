"""ftpc: the client for ftpd. `ftpc.Client` is the Python API."""

from ftpc.client import Client, Entry, GetResult, PutResult

__all__ = ["Client", "Entry", "GetResult", "PutResult"]
