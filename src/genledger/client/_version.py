"""The installed version of genledger, as the client reports it in its ``User-Agent``."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]


def _installed_version() -> str:
    # Read from the installed distribution rather than importing ``genledger``'s root, so the
    # client never depends on anything outside ``genledger.client``.
    try:
        return version("genledger")
    except PackageNotFoundError:
        return "0+unknown"


__version__: str = _installed_version()
