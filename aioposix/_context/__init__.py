"""The per-"process" context (vfs_aio.c's kaioinfo) and the module-level calls
on a loop's default context.
"""
