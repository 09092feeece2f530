import os, sqlite3, sys, threading
def open_cache():
    return sqlite3.connect(":memory:")


# leaky.py MODE — a Python program whose open_cache() (line 3) opens connections it leaks; ends with os._exit(0).
#   leak       one leak from open_cache, one connection closed
#   deep N     open_cache called N frames down a recursion
#   generator  open_cache from inside a generator
#   coroutine  open_cache from inside an async def run by asyncio
#   thread     open_cache on a threading.Thread
#   fork       open_cache in a fork child (the child leaks it; prints child=PID)
#   loop       open_cache 50 times from one line of a loop (3.11+ specializes that line's call as it runs)
#   loop_other the loop, and one leak from open_other
#   loop_threads  open_cache on 50 threads started from one line of a loop
#   loop_tasks    open_cache in 50 asyncio tasks created from one line of a loop
kept = []


def open_other():
    return sqlite3.connect(":memory:")


def open_in_thread():
    kept.append(open_cache())


async def open_in_task():
    return open_cache()


async def tasks_loop():
    import asyncio
    for _ in range(50):
        kept.append(await asyncio.create_task(open_in_task()))


def recurse(n):
    if n == 0:
        kept.append(open_cache())
    else:
        recurse(n - 1)


def gen_open():
    yield open_cache()


async def coro_open():
    return open_cache()


def main(mode, arg):
    if mode == "leak":
        kept.append(open_cache())
        sqlite3.connect(":memory:").close()
    elif mode == "deep":
        recurse(int(arg))
    elif mode == "generator":
        kept.extend(gen_open())
    elif mode == "coroutine":
        import asyncio
        kept.append(asyncio.run(coro_open()))
    elif mode == "thread":
        t = threading.Thread(target=lambda: kept.append(open_cache()))
        t.start()
        t.join()
    elif mode in ("loop", "loop_other"):
        for _ in range(50):
            kept.append(open_cache())
        if mode == "loop_other":
            kept.append(open_other())
    elif mode == "loop_threads":
        for _ in range(50):
            t = threading.Thread(target=open_in_thread)
            t.start()
            t.join()
    elif mode == "loop_tasks":
        import asyncio
        asyncio.run(tasks_loop())
    elif mode == "fork":
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            kept.append(open_cache())
            os._exit(0)
        print(f"child={pid}", flush=True)
        os.waitpid(pid, 0)
    sys.stdout.flush()
    os._exit(0)


main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
