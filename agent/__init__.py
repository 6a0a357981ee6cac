"""moby-agent: the guest-side agent of the Docker for Windows VM."""

__version__ = "0.1.0"
