import atexit, contextlib, gc, importlib, sqlite3, sys


# closes.py MODE [PYC_DIR] — who closed a connection: the program (explicit: none of these is a finalizer
# close, though no line says "close" where most of them run) or the garbage collector (finalized: each one
# is). MODE: explicit, finalized, or both. PYC_DIR holds pycmod's .pyc without its .py (finalized).
class Sub(sqlite3.Connection):
    pass


def open_indirect():
    c = sqlite3.connect(":memory:")
    fin = c.close
    fin()


def open_getattr():
    c = sqlite3.connect(":memory:")
    name = "clo" + "se"
    getattr(c, name)()


def open_listed():
    c = sqlite3.connect(":memory:")
    for f in [c.close]:
        f()


def open_exitstack():
    with contextlib.ExitStack() as stack:
        c = sqlite3.connect(":memory:")
        stack.callback(c.close)


def open_closing():
    with contextlib.closing(sqlite3.connect(":memory:")):
        pass


def open_subclass():
    c = sqlite3.connect(":memory:", factory=Sub)
    done = c.close
    done()


def open_atexit():
    atexit.register(sqlite3.connect(":memory:").close)


def open_with_block():
    # the with statement commits; it does not close: closed below, explicitly
    with sqlite3.connect(":memory:") as c:
        c.execute("select 1")
    return c


def open_dropped():
    c = sqlite3.connect(":memory:")
    c = None


def open_deleted():
    c = sqlite3.connect(":memory:")
    del c


def open_cycle():
    c = sqlite3.connect(":memory:")
    cycle = [c]
    cycle.append(cycle)


def open_function_end():
    c = sqlite3.connect(":memory:")


kept = None


def open_global():
    global kept
    kept = sqlite3.connect(":memory:")


mode = sys.argv[1]
if mode in ("explicit", "both"):
    open_indirect()
    open_getattr()
    open_listed()
    open_exitstack()
    open_closing()
    open_subclass()
    open_atexit()
    w = open_with_block()
    w.close()
if mode in ("finalized", "both"):
    open_dropped()
    open_deleted()
    open_cycle()
    gc.collect()
    open_function_end()
    sys.path.insert(0, sys.argv[2])
    importlib.import_module("pycmod").open_and_drop()
    open_global()
