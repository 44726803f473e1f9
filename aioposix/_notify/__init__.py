"""Notification: sigevents (signal, callback, kevent), the kqueue-like event
queue and lio_listio batches.
"""
