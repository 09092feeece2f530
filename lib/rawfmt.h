/* rawfmt.h — the per-process journal format, shared by the recorder (lib/) and the CLI (harness/). */
#ifndef CONNLEAK_RAWFMT_H
#define CONNLEAK_RAWFMT_H

#include <stdint.h>

/* A journal is a file of fixed 64-byte slots. Slot 0 is the header. Every
 * other slot is a record whose `type` byte is written last (release store), so
 * a slot still zero was reserved but never finished (the process died between
 * the two) or lies past the end: readers skip it. A record that carries bytes
 * (a string, a stack) is followed by `slots` continuation slots, each starting
 * with the CONT type byte and then 56 bytes of payload. */

#define CONNLEAK_RAW_MAGIC "CLKRAW1\n"
#define CONNLEAK_RAW_VERSION 1u
#define CONNLEAK_RAW_SLOT 64u
#define CONNLEAK_RAW_CONT_PAYLOAD 56u
/* journals grow in whole chunks: a size that is not a multiple was cut short (disk full, a copy) */
#define CONNLEAK_RAW_CHUNK (1u << 20)
#define CONNLEAK_RAW_SUFFIX ".raw"
/* Environment variable naming the run directory the CLI reads. */
#define CONNLEAK_RUN_DIR_ENV "CONNLEAK_RUN_DIR"
#define CONNLEAK_RUN_ID_ENV "CONNLEAK_RUN_ID" /* 16 hex digits, set by `connleak run` */

enum connleak_raw_type {
    CONNLEAK_REC_EMPTY = 0,
    CONNLEAK_REC_CONT = 1,          /* payload of the record before it */
    CONNLEAK_REC_STRING = 2,        /* blob.id names blob.len bytes in the continuation slots */
    CONNLEAK_REC_STACK = 3,         /* blob.id names blob.len/8 uint64 return addresses */
    CONNLEAK_REC_MODULE = 4,        /* a loaded object: address range, load bias, path string */
    CONNLEAK_REC_OPEN = 5,          /* a connection opened (also when the open failed) */
    CONNLEAK_REC_CLOSE = 6,         /* an open connection closed */
    CONNLEAK_REC_DOUBLE_CLOSE = 7,  /* a close of a connection already closed (not passed on) */
    CONNLEAK_REC_UNKNOWN_CLOSE = 8, /* a close of a connection never seen open (passed on) */
    CONNLEAK_REC_CHECKOUT = 9,      /* pool checkout (its own namespace of handles) */
    CONNLEAK_REC_CHECKIN = 10,
    CONNLEAK_REC_EXIT = 11,         /* exit handlers ran: the process ended normally */
    CONNLEAK_REC_LOST = 12,         /* ev.result events lost (written by older recorders; now header.lost) */
    CONNLEAK_REC_CLOSE_BUSY = 13,   /* a close refused (SQLITE_BUSY): the connection stays open */
    CONNLEAK_REC_NOTE = 14,         /* ev.target names a string the report shows as a note */
    CONNLEAK_REC_UNFINALIZED = 15,  /* after a CLOSE_BUSY: ev.target names the SQL of a statement of
                                     * ev.handle left unfinalized, one record each */
    CONNLEAK_REC_TYPE_MAX = 15
};

enum connleak_raw_backend {
    CONNLEAK_RAW_SQLITE = 1,
    CONNLEAK_RAW_POSTGRES = 2
};

/* A stack word with this tag is no return address but a Python frame: the low 32 bits are the id
 * of a STRING "FILE\0QUALNAME\0LINE" (lib/recorder/pyframes.c). Never a canonical x86-64 or
 * AArch64 user address. */
#define CONNLEAK_RAW_PY_TAG 0xC1C0000000000000ull
#define CONNLEAK_RAW_TAG_MASK 0xFFFF000000000000ull

/* Flags on events. */
#define CONNLEAK_RAWF_INHERITED 0x1u   /* close of a connection inherited through fork */
#define CONNLEAK_RAWF_POOL 0x2u        /* recorded through the API (a pool), not a wrapper */
#define CONNLEAK_RAWF_FAILED 0x4u      /* the open failed; the handle must still be closed */
#define CONNLEAK_RAWF_WIRE 0x8u        /* PostgreSQL seen on its socket (wire.c), not through libpq */
#define CONNLEAK_RAWF_TERMINATED 0x10u /* CLOSE of a wire connection: the client sent Terminate first */
/* CLOSE of a connection Python's sqlite3 module opened, from the code that closed it
 * (lib/recorder/pysqlite.c); neither: not known (other bindings, older journals) */
#define CONNLEAK_RAWF_FINALIZER 0x20u  /* the object's deallocator (garbage collected, dropped, at exit) */
#define CONNLEAK_RAWF_EXPLICIT 0x40u   /* the program's close() */

struct connleak_raw_header {
    char magic[8];
    uint32_t version;
    uint32_t slot_size;
    int32_t pid;
    int32_t ppid;
    uint32_t forked;        /* 1: started by fork (not exec) from ppid */
    uint32_t exe;           /* string id of the executable path, 0 when unknown */
    uint64_t start_ns;      /* CLOCK_REALTIME at start */
    uint32_t stack_depth;
    uint32_t cmdline;       /* string id of argv joined by NUL bytes, 0 when unknown */
    uint64_t lost;          /* events that found no room (disk full, size limit), counted in place */
    uint64_t run_id;        /* CONNLEAK_RUN_ID of the `connleak run` it belongs to (0: none; journals of
                             * other runs may share a --keep-raw directory) */
};

struct connleak_raw_record {
    uint8_t type;
    uint8_t backend;
    uint16_t flags;
    uint32_t tid;
    union {
        struct {
            uint64_t handle;
            uint32_t stack;             /* where this event happened */
            uint32_t target;            /* string id: what was opened (OPEN) */
            uint32_t open_stack;        /* DOUBLE_CLOSE, CLOSE: where it was opened */
            uint32_t first_close_stack; /* DOUBLE_CLOSE: where it was first closed */
            uint32_t test;              /* string id of the running test, 0 outside tests */
            int32_t result;             /* the database call's return code */
            uint64_t time_ns;           /* CLOCK_MONOTONIC */
            uint32_t thread_stack;      /* OPEN, CHECKOUT: where the opening thread was created
                                         * (0: the main thread, unknown, or an older journal) */
        } ev;
        struct {
            uint32_t id;
            uint32_t len;    /* payload bytes */
            uint32_t slots;  /* continuation slots that follow */
        } blob;
        struct {
            uint64_t start;  /* lowest mapped address */
            uint64_t end;    /* one past the highest */
            uint64_t bias;   /* load bias: runtime address minus file address */
            uint32_t path;   /* string id */
        } module;
        uint8_t bytes[56];
    } u;
};

_Static_assert(sizeof(struct connleak_raw_header) == CONNLEAK_RAW_SLOT, "header is one slot");
_Static_assert(sizeof(struct connleak_raw_record) == CONNLEAK_RAW_SLOT, "record is one slot");
_Static_assert(__builtin_offsetof(struct connleak_raw_record, u.ev.thread_stack) == 48,
               "thread_stack is in the event's spare bytes: the other fields keep their offsets");

#endif
