/*
 * LD_PRELOAD shim for hv_kvp_daemon in the stand-in guest (there is no
 * VMBus): open("/dev/vmbus/hv_kvp") opens a virtio-serial port instead, whose
 * other end is the test's host double speaking the kernel's side of the KVP
 * protocol. A virtio port is a byte stream while the kernel device hands out
 * whole messages, so reads and writes on that descriptor are completed to the
 * size asked for; while the host end is not connected, reads wait.
 *
 * HV_KVP_SHIM_PORT names the port (default /dev/vport1p1).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define KVP_DEVICE "/dev/vmbus/hv_kvp"

static int kvp_fd = -1;

static int (*real_open)(const char *, int, ...);
static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_write)(int, const void *, size_t);

static void resolve(void)
{
	if (!real_open) {
		real_open = dlsym(RTLD_NEXT, "open");
		real_read = dlsym(RTLD_NEXT, "read");
		real_write = dlsym(RTLD_NEXT, "write");
	}
}

int open(const char *path, int flags, ...)
{
	mode_t mode = 0;

	resolve();
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	if (strcmp(path, KVP_DEVICE) == 0) {
		const char *port = getenv("HV_KVP_SHIM_PORT");
		int fd = real_open(port ? port : "/dev/vport1p1", O_RDWR | O_CLOEXEC);
		if (fd >= 0)
			kvp_fd = fd;
		return fd;
	}
	return real_open(path, flags, mode);
}

ssize_t read(int fd, void *buf, size_t count)
{
	size_t got = 0;

	resolve();
	if (fd != kvp_fd || kvp_fd < 0)
		return real_read(fd, buf, count);
	while (got < count) {
		ssize_t n = real_read(fd, (char *)buf + got, count - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return got ? (ssize_t)got : n;
		}
		if (n == 0) {
			/* host end not connected (or gone): wait for it */
			struct timespec ts = { 0, 200 * 1000 * 1000 };
			nanosleep(&ts, NULL);
			continue;
		}
		got += (size_t)n;
	}
	return (ssize_t)got;
}

ssize_t write(int fd, const void *buf, size_t count)
{
	size_t done = 0;

	resolve();
	if (fd != kvp_fd || kvp_fd < 0)
		return real_write(fd, buf, count);
	while (done < count) {
		ssize_t n = real_write(fd, (const char *)buf + done, count - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return done ? (ssize_t)done : n;
		}
		done += (size_t)n;
	}
	return (ssize_t)done;
}
