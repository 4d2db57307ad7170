/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by rdif's C selftests: load and unload the module with
 * finit_module(2)/delete_module(2), wait for its devices, read sysfs.
 *
 * The module is $RDIF_KO (scripts/guest exports it), else $RDIF_ROOT/rdif.ko,
 * else ../rdif.ko next to the test binary.
 */
#ifndef RDIF_TEST_H
#define RDIF_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define RDIF_MIB (1024ULL * 1024ULL)

static inline void rdif_sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static inline const char *rdif_ko_path(void)
{
	static char path[PATH_MAX + 32];
	const char *e = getenv("RDIF_KO");
	char exe[PATH_MAX];
	ssize_t n;

	if (e && *e)
		return e;
	e = getenv("RDIF_ROOT");
	if (e && *e) {
		snprintf(path, sizeof(path), "%s/rdif.ko", e);
		return path;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		*strrchr(exe, '/') = '\0';
		snprintf(path, sizeof(path), "%s/../rdif.ko", exe);
	} else {
		snprintf(path, sizeof(path), "../rdif.ko");
	}
	return path;
}

static inline int rdif_loaded(void)
{
	return access("/sys/module/rdif", F_OK) == 0;
}

static inline void rdif_settle(void)
{
	if (access("/usr/bin/udevadm", X_OK) == 0 || access("/bin/udevadm", X_OK) == 0) {
		if (system("udevadm settle --timeout=10 >/dev/null 2>&1") == -1)
			perror("udevadm settle");
	}
}

/* Unload rdif (retrying while udev briefly holds a device); 0 or -errno. */
static inline int rdif_unload(void)
{
	int i;

	if (!rdif_loaded())
		return 0;
	rdif_settle();
	for (i = 0; i < 100; i++) {
		if (syscall(SYS_delete_module, "rdif", O_NONBLOCK) == 0)
			break;
		if (errno == ENOENT)
			return 0;
		if (errno != EAGAIN && errno != EBUSY)
			return -errno;
		rdif_sleep_ms(100);
	}
	if (i == 100)
		return -EBUSY;
	for (i = 0; i < 100 && access("/dev/rdif0", F_OK) == 0; i++)
		rdif_sleep_ms(100);
	return access("/dev/rdif0", F_OK) == 0 ? -EEXIST : 0;
}

static inline int rdif_is_blk(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISBLK(st.st_mode);
}

/*
 * Load rdif with PARAMS ("size=64 blocksize=4096") and wait up to 10 s for
 * /dev/rdif0../dev/rdif<nr-1>. Returns 0 or -errno.
 */
static inline int rdif_load(const char *params, int nr)
{
	char dev[32];
	int fd, err, i, t;

	err = rdif_unload();
	if (err)
		return err;
	fd = open(rdif_ko_path(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (syscall(SYS_finit_module, fd, params, 0)) {
		err = -errno;
		close(fd);
		return err;
	}
	close(fd);
	for (i = 0; i < nr; i++) {
		snprintf(dev, sizeof(dev), "/dev/rdif%d", i);
		for (t = 0; t < 100 && !rdif_is_blk(dev); t++)
			rdif_sleep_ms(100);
		if (!rdif_is_blk(dev))
			return -ETIMEDOUT;
	}
	rdif_settle();
	return 0;
}

/* Read an unsigned number from /sys/block/<disk>/<attr>; -1 on error. */
static inline long long rdif_sysfs_num(const char *disk, const char *attr)
{
	char path[256];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/block/%s/%s", disk, attr);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%lld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

#endif /* RDIF_TEST_H */
