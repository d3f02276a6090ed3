"""Test doubles for hardware that is not present: a simulated NVML and a fake powercap tree.

Shipped in the package (as Optuna ships ``optuna.testing``) so plug-in authors can test against
the same fakes. Numbers produced with these fakes were never seen on real hardware.
"""
