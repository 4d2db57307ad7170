// SPDX-License-Identifier: GPL-2.0
/*
 * rdif_crashfs: a seeded file system workload that knows what it made
 * durable, and its check after a power cut.
 *
 *   rdif_crashfs run DIR SEED OPS STATE
 *       OPS random operations in DIR (created empty): create, rewrite
 *       (truncating or in place, buffered, O_DIRECT, O_DSYNC), rename
 *       (also over another file), unlink, fsync, fdatasync, fsync of DIR,
 *       syncfs; then rewrites a few files in place without any flush
 *       (O_DIRECT, and buffered with sync_file_range()), so that the
 *       device's cache holds volatile writes. Writes to STATE the files
 *       whose name and contents are
 *       durable (POSIX: data by fsync/fdatasync/O_DSYNC, a name by fsync
 *       of the directory) and not changed since: "NAME ID GEN SIZE".
 *   rdif_crashfs check DIR SEED STATE
 *       After the cut and remount: each file of STATE exists with exactly
 *       its contents, and every file in DIR reads without error. Prints
 *       what it checked; exit 0, or 1 on a mismatch or read error.
 *
 * A file's contents are a function of (SEED, ID, GEN, offset), so the check
 * needs no copy of them.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILES 48
#define MAX_SIZE (96 * 1024)

static uint64_t seed;

static uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Byte @off of generation @gen of file @id. */
static uint8_t content(uint64_t id, uint64_t gen, uint64_t off)
{
	return mix(seed ^ mix(id << 32 ^ gen) ^ mix(off >> 3)) >> (8 * (off & 7));
}

static void fill(uint8_t *buf, uint64_t id, uint64_t gen, size_t size)
{
	for (size_t i = 0; i < size; i++)
		buf[i] = content(id, gen, i);
}

/* An inode the workload made, and what of it is durable. */
struct file {
	bool used;
	uint64_t id, gen;
	size_t size;
	/* the current contents were made durable (and not changed since) */
	bool synced;
	/* its current name, and the name the directory has durably */
	int name, dname;
};

static struct file files[MAX_FILES];
static uint64_t rng, next_id = 1;
static int dfd;
static char dir[4096];

static uint64_t rnd(uint64_t n)
{
	rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return (rng >> 33) % n;
}

static void die(const char *what, const char *name)
{
	fprintf(stderr, "rdif_crashfs: %s %s: %s\n", what, name, strerror(errno));
	exit(2);
}

static void path(char *p, int name)
{
	snprintf(p, 4200, "%s/f%d", dir, name);
}

/* The file whose current name is @name, or NULL. */
static struct file *named(int name)
{
	for (int i = 0; i < MAX_FILES; i++)
		if (files[i].used && files[i].name == name)
			return &files[i];
	return NULL;
}

static void dir_sync(void)
{
	if (fsync(dfd))
		die("fsync", dir);
	for (int i = 0; i < MAX_FILES; i++)
		if (files[i].used)
			files[i].dname = files[i].name;
}

/* (Re)writes @f whole with its next generation, one of several ways. */
static void rewrite(struct file *f, bool create)
{
	static uint8_t *buf;
	char p[4200];
	int how = rnd(4), flags = O_WRONLY | O_CREAT;
	size_t size = create || rnd(2) ? 4096 * (1 + rnd(MAX_SIZE / 4096)) : f->size;
	int fd;

	if (!buf && posix_memalign((void **)&buf, 4096, MAX_SIZE))
		exit(2);
	/* 0: truncate, buffered; 1: in place, buffered; 2: O_DIRECT; 3: O_DSYNC */
	if (how == 0)
		flags |= O_TRUNC;
	if (how == 2)
		flags |= O_DIRECT;
	if (how == 3)
		flags |= O_DSYNC;
	path(p, f->name);
	fd = open(p, flags, 0644);
	if (fd < 0)
		die("open", p);
	f->gen++;
	fill(buf, f->id, f->gen, size);
	if (pwrite(fd, buf, size, 0) != (ssize_t)size)
		die("write", p);
	if (size < f->size && ftruncate(fd, size))
		die("truncate", p);
	/* O_DSYNC made the data durable (not a truncation, nor the name) */
	f->synced = how == 3 && size >= f->size;
	f->size = size;
	switch (rnd(4)) {
	case 0:
		if (fsync(fd))
			die("fsync", p);
		f->synced = true;
		break;
	case 1:
		if (fdatasync(fd))
			die("fdatasync", p);
		f->synced = true;
		break;
	}
	close(fd);
}

static void op(void)
{
	struct file *f = &files[rnd(MAX_FILES)];
	char a[4200], b[4200];
	int r = rnd(100);

	if (!f->used) {
		int name = rnd(1000);

		if (named(name))
			return;
		*f = (struct file){ .used = true, .id = next_id++, .name = name, .dname = -1 };
		rewrite(f, true);
	} else if (r < 45) {
		rewrite(f, false);
	} else if (r < 60) {
		int name = rnd(1000);
		struct file *g = named(name);

		if (g == f)
			return;
		path(a, f->name);
		path(b, name);
		if (rename(a, b))
			die("rename", a);
		if (g) {
			/* replaced: gone once the directory is synced */
			g->used = false;
			if (g->dname >= 0)
				g->name = -2;
		}
		f->name = name;
	} else if (r < 68) {
		path(a, f->name);
		if (unlink(a))
			die("unlink", a);
		f->used = false;
	} else if (r < 85) {
		dir_sync();
	} else if (r < 92) {
		int fd;

		path(a, f->name);
		fd = open(a, O_RDONLY);
		if (fd < 0 || fsync(fd))
			die("fsync", a);
		close(fd);
		f->synced = true;
	} else if (r < 95) {
		if (syncfs(dfd))
			die("syncfs", dir);
		for (int i = 0; i < MAX_FILES; i++)
			if (files[i].used) {
				files[i].synced = true;
				files[i].dname = files[i].name;
			}
	}
}

/*
 * The last writes before the cut, none of them flushed: in-place rewrites
 * with O_DIRECT, and buffered ones pushed to the device with
 * sync_file_range() (data only, no flush). The device holds them in its
 * volatile cache; a cut loses some.
 */
static void tail(void)
{
	static uint8_t *buf;
	int done = 0;

	if (!buf && posix_memalign((void **)&buf, 4096, MAX_SIZE))
		exit(2);
	for (int i = 0; i < MAX_FILES && done < 16; i++) {
		struct file *f = &files[i];
		bool direct = done % 2 == 0;
		char p[4200];
		int fd;

		if (!f->used || !f->size)
			continue;
		path(p, f->name);
		fd = open(p, O_WRONLY | (direct ? O_DIRECT : 0));
		if (fd < 0)
			die("open", p);
		f->gen++;
		fill(buf, f->id, f->gen, f->size);
		if (pwrite(fd, buf, f->size, 0) != (ssize_t)f->size)
			die("write", p);
		if (!direct && sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE |
				SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER))
			die("sync_file_range", p);
		f->synced = false;
		close(fd);
		done++;
	}
}

static int run(int argc, char **argv)
{
	int ops = atoi(argv[4]);
	FILE *st;

	snprintf(dir, sizeof(dir), "%s", argv[2]);
	if (mkdir(dir, 0755) && errno != EEXIST)
		die("mkdir", dir);
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (dfd < 0)
		die("open", dir);
	rng = seed;
	for (int i = 0; i < ops; i++)
		op();
	tail();
	st = fopen(argv[5], "w");
	if (!st)
		die("open", argv[5]);
	/*
	 * Durable: the directory holds the name durably, nothing renamed
	 * over or away from it since, and its contents were synced after
	 * their last change. (A name unlinked or replaced is not listed.)
	 */
	for (int i = 0; i < MAX_FILES; i++) {
		struct file *f = &files[i];
		bool clash = false;

		if (!f->used || !f->synced || f->dname != f->name)
			continue;
		for (int j = 0; j < MAX_FILES; j++)
			clash |= j != i && files[j].used && files[j].dname == f->name;
		if (!clash)
			fprintf(st, "f%d %" PRIu64 " %" PRIu64 " %zu\n", f->name, f->id, f->gen,
				f->size);
	}
	(void)argc;
	return fclose(st) ? 2 : 0;
}

/* Reads @p whole; compares it with @gen of @id (@size bytes) if @id. */
static int verify(const char *p, uint64_t id, uint64_t gen, size_t size, size_t *bytes)
{
	static uint8_t buf[65536];
	size_t off = 0;
	ssize_t n;
	int fd = open(p, O_RDONLY);

	if (fd < 0) {
		printf("%s: %s\n", p, strerror(errno));
		return 1;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; id && i < n; i++)
			if (off + i >= size || buf[i] != content(id, gen, off + i)) {
				printf("%s: wrong contents at byte %zu\n", p, off + i);
				close(fd);
				return 1;
			}
		off += n;
	}
	close(fd);
	if (n < 0) {
		printf("%s: read: %s\n", p, strerror(errno));
		return 1;
	}
	if (id && off != size) {
		printf("%s: %zu bytes, want %zu\n", p, off, size);
		return 1;
	}
	*bytes += off;
	return 0;
}

static int check(char **argv)
{
	char name[256], p[4400];
	uint64_t id, gen;
	size_t size, bytes = 0, all = 0;
	int bad = 0, n = 0, total = 0;
	FILE *st = fopen(argv[4], "r");
	struct dirent *de;
	DIR *d;

	if (!st)
		die("open", argv[4]);
	while (fscanf(st, "%255s %" SCNu64 " %" SCNu64 " %zu", name, &id, &gen, &size) == 4) {
		snprintf(p, sizeof(p), "%s/%s", argv[2], name);
		bad += verify(p, id, gen, size, &bytes);
		n++;
	}
	fclose(st);
	d = opendir(argv[2]);
	if (!d) {
		printf("%s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", argv[2], de->d_name);
		bad += verify(p, 0, 0, 0, &all);
		total++;
	}
	closedir(d);
	printf("durable files %d (%zu bytes) exact: %d; files %d (%zu bytes), unreadable or wrong: %d\n",
	       n, bytes, n - bad, total, all, bad);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 6 && !strcmp(argv[1], "run")) {
		seed = strtoull(argv[3], NULL, 0);
		return run(argc, argv);
	}
	if (argc == 5 && !strcmp(argv[1], "check")) {
		seed = strtoull(argv[3], NULL, 0);
		return check(argv);
	}
	fprintf(stderr, "usage: rdif_crashfs run DIR SEED OPS STATE\n"
			"       rdif_crashfs check DIR SEED STATE\n");
	return 2;
}
