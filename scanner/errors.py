"""Every exception ghostport raises on purpose.

    ScannerError                 a mistake the user can fix; the CLI prints one line and exits 2
    ├── UsageError               a command line that does not parse (unknown flag, missing value)
    ├── TargetSpecError          a target, exclude or scope that cannot be read, or is out of scope
    ├── PortSpecError            a port specification outside 1-65535 or not in nmap syntax
    ├── InputFileError           a file named on the command line is missing or unreadable
    ├── OutputFileError          an output path that cannot be written
    ├── ScanOptionError          an option value out of range (rate, timeout, ...)
    ├── RegistryError            a registry file that is malformed, truncated or unreachable
    ├── ProfileError             profiles that do not load; lists every problem at once
    ├── MissingToolError         a program or module the command needs is not installed
    │                            (Chromium for --pdf, unshare for the lab, uvloop for --loop)
    ├── PrivilegeError           the command needs a privilege this process lacks
    │                            (raw sockets for --syn: root or CAP_NET_RAW)
    ├── LabError                 the emulated lab cannot start (ports taken, no privilege)
    └── StoreError               the scan history database cannot be used
        ├── StoreURLError        a database URL that does not parse or is not supported
        ├── StoreUnavailableError  the database cannot be opened, reached, migrated or written
        └── ScanRefError         an id, prefix, `last` or `previous` matching no scan or several
    └── ClusterError             a distributed scan that cannot go on (shards.py, cluster/)
        ├── BrokerUnavailableError  the broker cannot be reached (its URL printed redacted)
        ├── ShardRefusedError    a worker refused a shard outside its own --scope
        └── ShardTimeoutError    no worker reported on a shard within --shard-timeout

    ShardLostError               not a user mistake: a worker process died mid-slice; the
                                 scan fails loudly (exit 3), what was gathered is kept

Network outcomes (refused, reset, timeout, unreachable) are never exceptions: the engine
records them on the observation as a port state and a reason.
"""


class ScannerError(Exception):
    """A mistake in the user's input; the message is one full sentence naming the bad value."""


class UsageError(ScannerError):
    """A command-line mistake reported by the argument parser."""


class TargetSpecError(ScannerError):
    """A target or exclude specification that cannot be parsed."""


class PortSpecError(ScannerError):
    """A port specification that cannot be parsed."""


class InputFileError(ScannerError):
    """A file named on the command line cannot be read."""


class OutputFileError(ScannerError):
    """An output file cannot be created or written."""


class ScanOptionError(ScannerError):
    """A scan option with a value out of its allowed range."""


class ProfileError(ScannerError):
    """Profiles with problems; the message lists each with its file and path."""


class RegistryError(ScannerError):
    """The port registry cannot be loaded or updated; the message names the file and line."""


class MissingToolError(ScannerError):
    """A program or Python module the command needs is not installed; says how to get it."""


class PrivilegeError(ScannerError):
    """The command needs a privilege this process does not have; says which and how to get it."""


class LabError(ScannerError):
    """The emulated lab cannot start: its ports are taken, or binding them is not allowed."""


class StoreError(ScannerError):
    """The scan history database cannot be used; the message names it, never its password."""


class StoreURLError(StoreError):
    """A database URL that cannot be parsed, or names a database ghostport does not support."""


class StoreUnavailableError(StoreError):
    """The database cannot be opened, reached, migrated or written."""


class ScanRefError(StoreError):
    """A scan reference that matches no scan in the database, or more than one."""


class ClusterError(ScannerError):
    """A distributed scan (local worker processes or Celery shards) that cannot go on."""


class BrokerUnavailableError(ClusterError):
    """The broker cannot be reached; the message names it with its credentials redacted."""


class ShardRefusedError(ClusterError):
    """A worker refused a shard (a target outside the worker's own --scope)."""


class ShardTimeoutError(ClusterError):
    """No worker reported on a shard within --shard-timeout (no worker for its vantage?)."""


class ShardLostError(Exception):
    """A worker process died in the middle of its slice: results would be lost, so the scan
    fails loudly (exit 3) and keeps what was gathered, marked incomplete."""
