"""A lab of emulated legacy services on loopback, for `ghostport demo`, `ghostport lab` and tests.

Only 127.0.0.0/8 addresses: the lab refuses any other base.
"""
