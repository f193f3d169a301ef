/*
 * slot: see slot.h.
 */
#include "slot.h"

#include "str.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define STEM_KEEP 180   /**< bytes of a long name kept before its hash */
#define STEM_SIZE (STEM_KEEP + 18) /**< "-" 16 hex digits, NUL */
#define LOCK_TRIES 8    /**< a file replaced under us this often: taken */

struct slot {
	int fd;           /**< the open lock file; its flock is the slot */
	unsigned number;  /**< 0 to SLOT_MAX - 1 */
	char *path;       /**< the lock file, owned */
};

/* 0 when dir is a directory we may create files in, else -errno. */
static int check_dir(const char *dir)
{
	struct stat st;

	if (!*dir)
		return -ENOENT;
	if (stat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (access(dir, W_OK | X_OK) < 0)
		return -errno;
	return 0;
}

int slot_default_dir(char *buf, size_t size)
{
	const char *dirs[] = {
		getenv("RUNTIME_DIRECTORY"), "/run/extractd", getenv("TMPDIR"),
		"/tmp",
	};
	size_t i, len;

	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!dirs[i] || !*dirs[i])
			continue;
		/* systemd joins several RuntimeDirectory= entries with ':'. */
		len = i == 0 ? strcspn(dirs[i], ":") : strlen(dirs[i]);
		if (len >= size)
			continue;
		memcpy(buf, dirs[i], len);
		buf[len] = '\0';
		if (check_dir(buf) == 0)
			return 0;
	}
	return -1;
}

/* name as a file name: [A-Za-z0-9._-] kept, anything else '_'; a long
 * one is cut, followed by a hash of the whole (FNV-1a) so that names
 * alike in their first STEM_KEEP bytes stay apart. */
static void file_stem(const char *name, char stem[STEM_SIZE])
{
	uint64_t hash = 14695981039346656037ULL;
	size_t i, len = strlen(name);

	for (i = 0; i < len && i < STEM_KEEP; i++) {
		char c = name[i];
		bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
			    c == '-';

		stem[i] = keep ? c : '_';
	}
	stem[i] = '\0';
	if (len <= STEM_KEEP)
		return;
	for (i = 0; i < len; i++) {
		hash ^= (unsigned char)name[i];
		hash *= 1099511628211ULL;
	}
	snprintf(stem + STEM_KEEP, STEM_SIZE - STEM_KEEP, "-%016llx",
		 (unsigned long long)hash);
}

/*
 * Open and lock path.
 * @returns 0 with the locked fd in ret_fd; 1 when the slot is taken (held
 * by another, or a file we may not or must not use); -errno on an error.
 */
static int lock_file(const char *path, int *ret_fd)
{
	struct stat held, now;
	int tries, fd, e;

	for (tries = 0; tries < LOCK_TRIES; tries++) {
		/* O_NONBLOCK: a FIFO in its place must not block us. */
		fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
					O_NONBLOCK | O_NOCTTY,
			  0644);
		if (fd < 0) {
			/* Another user's file, a symbolic link, a
			 * directory. */
			if (errno == EACCES || errno == EPERM ||
			    errno == ELOOP || errno == EISDIR)
				return 1;
			return -errno;
		}
		if (fstat(fd, &held) < 0) {
			e = errno;
			close(fd);
			return -e;
		}
		if (!S_ISREG(held.st_mode)) {
			close(fd);
			return 1;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			e = errno;
			close(fd);
			return e == EWOULDBLOCK ? 1 : -e;
		}
		/* Ours, if it is still the file at path: a holder that gives
		 * its slot up removes the file before it unlocks, and we may
		 * have opened that file just before. */
		if (lstat(path, &now) == 0 && now.st_dev == held.st_dev &&
		    now.st_ino == held.st_ino) {
			*ret_fd = fd;
			return 0;
		}
		close(fd);
	}
	return 1;
}

struct slot *slot_claim(const char *dir, const char *name, char *err,
			size_t err_size)
{
	char stem[STEM_SIZE];
	struct slot *s;
	unsigned n;
	int r;

	r = check_dir(dir);
	if (r < 0) {
		snprintf(err, err_size, "%s: %s", dir, strerror(-r));
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	s->fd = -1;
	file_stem(name, stem);
	for (n = 0; n < SLOT_MAX; n++) {
		s->path = str_printf("%s/%s-%u.lock", dir, stem, n);
		if (!s->path) {
			snprintf(err, err_size, "out of memory");
			goto fail;
		}
		r = lock_file(s->path, &s->fd);
		if (r == 0) {
			s->number = n;
			return s;
		}
		if (r < 0) {
			snprintf(err, err_size, "%s: %s", s->path,
				 strerror(-r));
			goto fail;
		}
		free(s->path);
		s->path = NULL;
	}
	snprintf(err, err_size, "%s: all %d slots of %s are taken", dir,
		 SLOT_MAX, stem);
fail:
	slot_free(s);
	return NULL;
}

unsigned slot_number(const struct slot *s)
{
	return s->number;
}

const char *slot_path(const struct slot *s)
{
	return s->path;
}

void slot_free(struct slot *s)
{
	if (!s)
		return;
	if (s->fd >= 0) {
		/* Remove the file while it is still locked (slot.h). */
		unlink(s->path);
		close(s->fd);
	}
	free(s->path);
	free(s);
}
