"""distill-serve inference service: Open Inference Protocol v2 plus friendly classify/compare endpoints."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("distill-serve")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
