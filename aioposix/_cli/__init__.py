"""The command line: ``aioposix bench`` and ``aioposix sysctl``.
"""
