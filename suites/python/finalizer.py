import gc, sqlite3


# finalizer.py — connections closed by Python's garbage collector, not by the program: one dropped, one
# in a reference cycle that gc.collect() frees, one a module global the interpreter closes at exit;
# and one closed explicitly, which is no finalizer close.
def explicit():
    c = sqlite3.connect(":memory:")
    c.close()


def open_dropped():
    c = sqlite3.connect(":memory:")
    c = None


def open_cycle():
    c = sqlite3.connect(":memory:")
    cycle = [c]
    cycle.append(cycle)


kept = None


def open_global():
    global kept
    kept = sqlite3.connect(":memory:")


explicit()
open_dropped()
open_cycle()
gc.collect()
open_global()
