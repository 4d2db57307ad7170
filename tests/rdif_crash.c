// SPDX-License-Identifier: GPL-2.0
/*
 * rdif_crash: the two halves of a power-cut test (scripts/powercut).
 *
 *   rdif_crash write DEV RUN SEED SYNC_EVERY
 *   rdif_crash check DEV RUN SEED SYNCED
 *
 * write: O_DIRECT writes, forever, of a schedule that SEED fixes: write
 * number i (from 1) covers a random 4 KiB-aligned piece (4 KiB to 256 KiB)
 * of DEV, and every 512-byte sector it writes is stamped with RUN, i and
 * the sector's number throughout. After every SYNC_EVERY writes it calls
 * fsync(DEV) and then prints "SYNCED RUN i" (i the last write completed
 * before the fsync). The host kills the machine at a random moment.
 *
 * check, after the next boot: reads all of DEV and checks every sector:
 * - it reads back at all (no EILSEQ: its data and PI match; the device
 *   has read_check=1 and the block layer verifies too);
 * - it is whole: zeroes, or one write's stamp throughout, of a write that
 *   did cover this sector (no torn interval);
 * - it is at least as new as the last write of run RUN that covered it
 *   with i <= SYNCED (no flushed write lost).
 * Prints the counts; exits 0 if all held, 1 if not, 2 on setup errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define SECTOR		512
#define MAX_WRITE	(256 * 1024)
#define CHECK_IO	(64 * 1024)

struct piece {
	uint64_t off, len;
};

static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* What write number I of the schedule SEED covers on a device of SIZE. */
static struct piece schedule(uint64_t seed, uint64_t i, uint64_t size)
{
	uint64_t r = mix(seed * 0x9e3779b97f4a7c15ULL + i);
	uint64_t blocks = size / 4096, len = 1 + (r >> 40) % (MAX_WRITE / 4096);
	struct piece p;

	if (len > blocks)
		len = blocks;
	p.off = (r % (blocks - len + 1)) * 4096;
	p.len = len * 4096;
	return p;
}

/* Word K of sector SEC as written by write I of run RUN. */
static uint64_t stamp(uint64_t run, uint64_t i, uint64_t sec, unsigned int k)
{
	return k % 2 ? (sec << 8 | k) : (run << 40 | i);
}

static int open_dev(const char *dev, uint64_t *size)
{
	int fd = open(dev, O_RDWR | O_DIRECT | O_CLOEXEC);

	if (fd < 0 || ioctl(fd, BLKGETSIZE64, size)) {
		fprintf(stderr, "rdif_crash: %s: %s\n", dev, strerror(errno));
		exit(2);
	}
	return fd;
}

static int do_write(const char *dev, uint64_t run, uint64_t seed, uint64_t every)
{
	uint64_t size, *buf, i;
	int fd = open_dev(dev, &size);

	if (posix_memalign((void **)&buf, 4096, MAX_WRITE))
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("START %llu\n", (unsigned long long)run);
	for (i = 1;; i++) {
		struct piece p = schedule(seed, i, size);

		for (uint64_t s = 0; s < p.len / SECTOR; s++)
			for (unsigned int k = 0; k < SECTOR / 8; k++)
				buf[s * (SECTOR / 8) + k] = stamp(run, i, p.off / SECTOR + s, k);
		if (pwrite(fd, buf, p.len, (off_t)p.off) != (ssize_t)p.len) {
			printf("WRITE-FAILED %llu: %s\n", (unsigned long long)i, strerror(errno));
			return 1;
		}
		if (i % every == 0) {
			if (fsync(fd)) {
				printf("FSYNC-FAILED %llu: %s\n", (unsigned long long)i,
				       strerror(errno));
				return 1;
			}
			printf("SYNCED %llu %llu\n", (unsigned long long)run, (unsigned long long)i);
		}
	}
}

/* The last write <= SYNCED of the schedule that covers each sector. */
static uint64_t *required(uint64_t seed, uint64_t synced, uint64_t size)
{
	uint64_t *req = calloc(size / SECTOR, sizeof(*req));

	if (!req)
		exit(2);
	for (uint64_t i = 1; i <= synced; i++) {
		struct piece p = schedule(seed, i, size);

		for (uint64_t s = p.off / SECTOR; s < (p.off + p.len) / SECTOR; s++)
			req[s] = i;
	}
	return req;
}

static int covers(uint64_t seed, uint64_t i, uint64_t size, uint64_t sec)
{
	struct piece p = schedule(seed, i, size);

	return sec >= p.off / SECTOR && sec < (p.off + p.len) / SECTOR;
}

static int do_check(const char *dev, uint64_t run, uint64_t seed, uint64_t synced)
{
	uint64_t size, *buf, *req, bad_read = 0, torn = 0, lost = 0, newer = 0, sectors = 0;
	int fd = open_dev(dev, &size);

	if (posix_memalign((void **)&buf, 4096, CHECK_IO))
		return 2;
	req = required(seed, synced, size);
	for (uint64_t off = 0; off < size; off += CHECK_IO) {
		size_t len = size - off < CHECK_IO ? size - off : CHECK_IO;
		int whole = pread(fd, buf, len, (off_t)off) == (ssize_t)len;

		for (size_t s = 0; s < len / SECTOR; s++) {
			uint64_t sec = off / SECTOR + s, *w = buf + s * (SECTOR / 8);
			uint64_t r, i;
			int ok = 1;

			sectors++;
			/* After a failed big read, find the sectors that fail. */
			if (!whole && pread(fd, w, SECTOR, (off_t)(sec * SECTOR)) != SECTOR) {
				if (bad_read++ < 10)
					printf("sector %llu: read fails: %s\n",
					       (unsigned long long)sec, strerror(errno));
				continue;
			}
			if (w[0] == 0) {
				for (unsigned int k = 0; k < SECTOR / 8; k++)
					ok &= w[k] == 0;
				r = 0;
				i = 0;
			} else {
				r = w[0] >> 40;
				i = w[0] & ((1ULL << 40) - 1);
				for (unsigned int k = 0; k < SECTOR / 8; k++)
					ok &= w[k] == stamp(r, i, sec, k);
				if (ok && r == run)
					ok = covers(seed, i, size, sec);
			}
			if (!ok) {
				if (torn++ < 10)
					printf("sector %llu: torn or foreign contents (%016llx %016llx)\n",
					       (unsigned long long)sec, (unsigned long long)w[0],
					       (unsigned long long)w[1]);
				continue;
			}
			if (req[sec] && (r != run || i < req[sec])) {
				if (lost++ < 10)
					printf("sector %llu: holds run %llu write %llu, but write %llu of run %llu was flushed\n",
					       (unsigned long long)sec, (unsigned long long)r,
					       (unsigned long long)i, (unsigned long long)req[sec],
					       (unsigned long long)run);
				continue;
			}
			newer += r == run && i > synced;
		}
	}
	printf("CHECK run %llu synced %llu: %llu sectors, %llu unreadable, %llu torn, %llu lost flushed, %llu newer than the last flush\n",
	       (unsigned long long)run, (unsigned long long)synced, (unsigned long long)sectors,
	       (unsigned long long)bad_read, (unsigned long long)torn, (unsigned long long)lost,
	       (unsigned long long)newer);
	free(req);
	return bad_read || torn || lost ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: rdif_crash write DEV RUN SEED SYNC_EVERY\n"
				"       rdif_crash check DEV RUN SEED SYNCED\n");
		return 2;
	}
	uint64_t run = strtoull(argv[3], NULL, 0), seed = strtoull(argv[4], NULL, 0);
	uint64_t n = strtoull(argv[5], NULL, 0);

	if (!strcmp(argv[1], "write") && n > 0 && run > 0 && run < (1 << 20))
		return do_write(argv[2], run, seed, n);
	if (!strcmp(argv[1], "check") && run > 0)
		return do_check(argv[2], run, seed, n);
	fprintf(stderr, "rdif_crash: bad arguments\n");
	return 2;
}
