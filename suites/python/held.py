import os, sqlite3, sys, time


# held.py — one connection held 1.2 s and closed, one closed at once; with "open", one more opened by
# kept_open() still open when the process ends 0.8 s later (os._exit).
def hold_long():
    c = sqlite3.connect(":memory:")
    time.sleep(1.2)
    c.close()


def quick():
    sqlite3.connect(":memory:").close()


def kept_open():
    return sqlite3.connect(":memory:")


hold_long()
quick()
if len(sys.argv) > 1 and sys.argv[1] == "open":
    kept = kept_open()
    time.sleep(0.8)
    os._exit(0)
