"""The ftpd/ftpc wire protocol, shared by the daemon and the client."""

__version__ = "0.1.0"
