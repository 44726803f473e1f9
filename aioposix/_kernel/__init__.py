"""Process-wide state (vfs_aio.c's globals): the tunables, the job counters
and the choice of backend, and the reaper that runs down what a dead loop left.
"""
