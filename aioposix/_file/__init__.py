"""The file layer: open(), the binary and text file objects, temporary files,
standard streams and the aiofiles-shaped os calls.
"""
