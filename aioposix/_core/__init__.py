"""The job and what every path shares: the Aiocb and its states, the
constants, submit-time checks, the system calls, the contract between the
context and its backends, and small per-loop helpers.
"""
