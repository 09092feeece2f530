/* embed.c — a C program that embeds Python (Py_Initialize) whose script leaks a connection from open_embedded() (line 3 of "<string>"). */
#include <Python.h>
#include <unistd.h>

int main(void)
{
    Py_Initialize();
    PyRun_SimpleString("import sqlite3\n"
                       "def open_embedded():\n"
                       "    return sqlite3.connect(':memory:')\n"
                       "kept = open_embedded()\n");
    fflush(stdout);
    _exit(0); /* no finalization: the connection stays open */
}
