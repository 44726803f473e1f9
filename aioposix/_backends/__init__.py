"""Where a job runs when it cannot finish inline: the inline attempt itself,
the readiness bridge, the io_uring ring, and the pool of worker daemons.
"""
