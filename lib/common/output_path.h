/* output_path.h — how a report file is written: replaced by a new private file, or written through (devices, /dev, /proc). */
#ifndef CONNLEAK_OUTPUT_PATH_H
#define CONNLEAK_OUTPUT_PATH_H

/* 1 when path must be written as it is, never replaced: a device, pipe or
 * socket (/dev/null, a FIFO), or any name under /dev or /proc — /dev/stderr
 * is a link to /proc/self/fd/2, which may be a link to a regular file, and
 * renaming a new file over it would replace the system's /dev/stderr.
 * Such a path is opened for appending (O_WRONLY|O_APPEND, no O_CREAT): the
 * output already there, a redirected stderr's, stays. 0: write a new file
 * beside it and rename it into place (a planted file or link is replaced,
 * never written into). */
int clk_output_writes_through(const char *path) __attribute__((visibility("hidden")));

#endif
