"""ftpc: the client for ftpd. `ftpc.Client` is the Python API."""

from ftpc.client import Client, GetResult, PutResult
from ftpc.listing import Entry

__all__ = ["Client", "Entry", "GetResult", "PutResult"]
