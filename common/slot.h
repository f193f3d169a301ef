/*
 * slot: a small number that no other live process on this host holds
 * for the same name, and that a process gets back when it restarts after
 * dying: the lowest free one.
 *
 * Slot N of NAME is the lock file DIR/NAME-N.lock, held with
 * flock(LOCK_EX | LOCK_NB) for as long as the slot is. The kernel drops
 * the lock when the holder dies, however it dies (SIGKILL, OOM), so a
 * crashed instance's slot is free at once; a restart then claims the
 * lowest free slot, which is its own unless another instance claimed it
 * meanwhile. flock locks belong to the open file description, so two
 * claims in one process exclude each other as two processes do.
 *
 * Only processes that use the same DIR see each other's slots.
 * slot_default_dir() gives every instance on a host the same one.
 *
 * A slot that is freed removes its file (while still holding the lock);
 * a claimer that finds its locked file no longer at the path (removed or
 * replaced meanwhile) tries again, so two holders never share a slot.
 * Files of another user that cannot be opened, symbolic links and other
 * non-files are skipped as taken.
 *
 * No locking inside: a slot belongs to its claimer.
 */
#ifndef EXTRACTD_SLOT_H
#define EXTRACTD_SLOT_H

#include <stddef.h>

struct slot;

/** Slots tried before slot_claim() gives up. */
#define SLOT_MAX 1024

/**
 * @brief The directory for slot lock files, the first writable one of:
 * $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=; its first entry),
 * /run/extractd, $TMPDIR, /tmp.
 * @returns 0 with the directory in buf, or -1 when none is writable (or
 *          fits in size).
 */
int slot_default_dir(char *buf, size_t size);

/**
 * @brief Claim the lowest free slot of name in dir. The file name is
 * name with characters other than [A-Za-z0-9._-] as '_', cut (and told
 * apart by a hash) when long.
 * @returns the slot, or NULL with err set (dir not writable, every slot
 *          up to SLOT_MAX taken, a system error).
 */
struct slot *slot_claim(const char *dir, const char *name, char *err,
			size_t err_size);

/** The slot's number, 0 to SLOT_MAX - 1. */
unsigned slot_number(const struct slot *s);

/** The lock file's path. */
const char *slot_path(const struct slot *s);

/** Give the slot up: remove its file, drop the lock; NULL is fine. */
void slot_free(struct slot *s);

#endif
