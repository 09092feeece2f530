# fx_docs.py — Python fixture for suites/docs: a sqlite3 connection left open by a function, then os._exit (no shutdown closes it).
import os
import sqlite3


def open_python_cache():
    return sqlite3.connect(":memory:")


keep = open_python_cache()
os._exit(0)
