"""Every exception ghostport raises on purpose.

    ScannerError                 a mistake the user can fix; the CLI prints one line and exits 2
    ├── TargetSpecError          a target, exclude or target file the scanner cannot read
    ├── PortSpecError            a port specification outside 1-65535 or not in nmap syntax
    ├── InputFileError           a file named on the command line is missing or unreadable
    ├── ScanOptionError          an option value out of range (rate, timeout, ...)
    ├── RegistryError            a registry file that is malformed, truncated or unreachable
    └── ProfileError             profiles that do not load; lists every problem at once

Network outcomes (refused, reset, timeout, unreachable) are never exceptions: the engine
records them on the observation as a port state and a reason.
"""


class ScannerError(Exception):
    """A mistake in the user's input; the message is one full sentence naming the bad value."""


class TargetSpecError(ScannerError):
    """A target or exclude specification that cannot be parsed."""


class PortSpecError(ScannerError):
    """A port specification that cannot be parsed."""


class InputFileError(ScannerError):
    """A file named on the command line cannot be read."""


class ScanOptionError(ScannerError):
    """A scan option with a value out of its allowed range."""


class ProfileError(ScannerError):
    """Profiles with problems; the message lists each with its file and path."""


class RegistryError(ScannerError):
    """The port registry cannot be loaded or updated; the message names the file and line."""


# Scan history (scanner/store). In the tree above:
#   └── StoreError               the scan history database cannot be used
#       ├── StoreURLError          a database URL that does not parse or names no supported database
#       ├── StoreUnavailableError  the database cannot be opened, reached, migrated or written
#       └── ScanRefError           an id, prefix, `last` or `previous` matching no scan or several
class StoreError(ScannerError):
    """The scan history database cannot be used; the message names it, never its password."""


class StoreURLError(StoreError):
    """A database URL that cannot be parsed, or names a database ghostport does not support."""


class StoreUnavailableError(StoreError):
    """The database cannot be opened, reached, migrated or written."""


class ScanRefError(StoreError):
    """A scan reference that matches no scan in the database, or more than one."""
