// SPDX-License-Identifier: GPL-2.0
/*
 * rdif_race: racing O_DIRECT I/O on one small region of a block device, as
 * a real PI-formatted disk must survive it.
 *
 *   rdif_race race   DEV SECS INTERVAL [WRITERS READERS]
 *   rdif_race mutate DEV SECS INTERVAL
 *
 * race: WRITERS threads (default 2) overwrite random block-aligned pieces
 * (one block to 64 KiB) of the first 64 KiB of DEV with patterns unique to
 * the write, while READERS threads (default 2) read random pieces. Every
 * read must succeed, and every INTERVAL-sized piece it returns must come
 * whole from one write (or read as never written: zeroes). With PI (block
 * layer auto-PI, or the device's read_check) a torn interval shows as
 * EILSEQ; without, as a mix of patterns.
 *
 * mutate: one writer overwrites the region from a buffer that a second
 * thread keeps changing while the writes are in flight. A write may fail
 * with EILSEQ (the device saw data that no longer matches the PI the block
 * layer generated) or succeed; nothing else.
 *
 * Both end with a read of the whole region, which must succeed (no EILSEQ:
 * every interval holds one write's data with that write's PI). Prints one
 * line of counts; exits 0 if all held, 1 if not, 2 on a usage or setup
 * error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define REGION		(64 * 1024)
#define MAX_THREADS	8

static const char *dev;
static unsigned int interval, lbs;
static atomic_int stop;
static atomic_ulong writes, write_eilseq, write_err, reads, read_eilseq, read_err, torn;

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A random block-aligned piece of the region: *off, return length. */
static size_t piece(uint64_t *s, off_t *off)
{
	size_t blocks = REGION / lbs;
	size_t first = rnd(s) % blocks;
	size_t n = 1 + rnd(s) % (blocks - first);

	*off = (off_t)(first * lbs);
	return n * lbs;
}

/* Word I of a write tagged TAG at device offset OFF. */
static uint64_t word(uint32_t tag, uint64_t off, size_t i)
{
	return (uint64_t)tag << 32 | (uint32_t)((off / 8) + i);
}

static void *alloc_buf(void)
{
	void *b;

	if (posix_memalign(&b, 4096, REGION))
		return NULL;
	memset(b, 0, REGION);
	return b;
}

static int open_dev(void)
{
	int fd = open(dev, O_RDWR | O_DIRECT | O_CLOEXEC);

	if (fd < 0)
		fprintf(stderr, "rdif_race: open %s: %s\n", dev, strerror(errno));
	return fd;
}

/* A thread's buffer and descriptor; exits the program if it cannot. */
static int thread_setup(uint64_t **buf)
{
	int fd = open_dev();

	*buf = alloc_buf();
	if (!*buf || fd < 0)
		exit(2);
	return fd;
}

/* Counts a write's outcome R (of LEN bytes at OFF). */
static void count_write(ssize_t r, size_t len, off_t off)
{
	atomic_fetch_add(&writes, 1);
	if (r == (ssize_t)len)
		return;
	if (r < 0 && errno == EILSEQ) {
		atomic_fetch_add(&write_eilseq, 1);
	} else {
		atomic_fetch_add(&write_err, 1);
		fprintf(stderr, "rdif_race: write %zu at %lld: %s\n", len, (long long)off,
			r < 0 ? strerror(errno) : "short");
	}
}

static void *writer(void *arg)
{
	uint64_t s = (uintptr_t)arg * 0x1234567ULL + (uint64_t)time(NULL);
	uint32_t id = (uint32_t)(uintptr_t)arg, seq = 0;
	uint64_t *buf;
	int fd = thread_setup(&buf);

	while (!atomic_load(&stop)) {
		off_t off;
		size_t len = piece(&s, &off);
		uint32_t tag = (id + 1) << 24 | (++seq & 0xffffff);
		ssize_t r;

		for (size_t i = 0; i < len / 8; i++)
			buf[i] = word(tag, off, i);
		r = pwrite(fd, buf, len, off);
		count_write(r, len, off);
	}
	close(fd);
	free(buf);
	return NULL;
}

/* Each interval of BUF (LEN bytes read at OFF) comes whole from one write. */
static int whole(const uint64_t *buf, size_t len, off_t off)
{
	size_t per = interval / 8;
	int bad = 0;

	for (size_t i = 0; i < len / 8; i += per) {
		uint32_t tag = buf[i] >> 32;
		int zero = buf[i] == 0;

		for (size_t j = i; j < i + per; j++) {
			if (zero ? buf[j] != 0 : buf[j] != word(tag, off, j)) {
				bad++;
				break;
			}
		}
	}
	return bad;
}

static void *reader(void *arg)
{
	uint64_t s = (uintptr_t)arg * 0x7654321ULL + (uint64_t)time(NULL);
	uint64_t *buf;
	int fd = thread_setup(&buf);

	while (!atomic_load(&stop)) {
		off_t off;
		size_t len = piece(&s, &off);
		ssize_t r = pread(fd, buf, len, off);
		int bad;

		atomic_fetch_add(&reads, 1);
		if (r != (ssize_t)len) {
			if (r < 0 && errno == EILSEQ) {
				atomic_fetch_add(&read_eilseq, 1);
			} else {
				atomic_fetch_add(&read_err, 1);
				fprintf(stderr, "rdif_race: read %zu at %lld: %s\n", len,
					(long long)off, r < 0 ? strerror(errno) : "short");
			}
			continue;
		}
		bad = whole(buf, len, off);
		if (bad)
			atomic_fetch_add(&torn, bad);
	}
	close(fd);
	free(buf);
	return NULL;
}

/* The mutator: flips bytes of the writer's buffer while it writes. */
static void *mutator(void *arg)
{
	volatile uint8_t *buf = arg;
	uint64_t s = 42;

	while (!atomic_load(&stop)) {
		size_t i = rnd(&s) % REGION;

		buf[i] ^= 0xff;
	}
	return NULL;
}

static void *mutated_writer(void *arg)
{
	uint8_t *buf = arg;
	uint64_t s = 7;
	int fd = open_dev();

	if (fd < 0)
		exit(2);
	while (!atomic_load(&stop)) {
		off_t off;
		size_t len = piece(&s, &off);
		ssize_t r = pwrite(fd, buf, len, off);

		count_write(r, len, off);
	}
	close(fd);
	return NULL;
}

/* Reads the whole region block by block; returns the blocks that failed. */
static int final_check(int check_pattern, unsigned long *eilseq)
{
	uint64_t *buf = alloc_buf();
	int fd = open_dev(), failed = 0;

	if (!buf || fd < 0)
		exit(2);
	for (off_t off = 0; off < REGION; off += lbs) {
		ssize_t r = pread(fd, buf, lbs, off);

		if (r != (ssize_t)lbs) {
			failed++;
			if (r < 0 && errno == EILSEQ)
				(*eilseq)++;
			else
				fprintf(stderr, "rdif_race: final read at %lld: %s\n",
					(long long)off, r < 0 ? strerror(errno) : "short");
			continue;
		}
		if (check_pattern && whole(buf, lbs, off)) {
			failed++;
			fprintf(stderr, "rdif_race: final read at %lld: torn interval\n",
				(long long)off);
		}
	}
	close(fd);
	free(buf);
	return failed;
}

int main(int argc, char **argv)
{
	pthread_t t[MAX_THREADS];
	int nw = 2, nr = 2, n = 0, secs, fd, mutate, bad;
	unsigned long final_eilseq = 0;
	void *mbuf = NULL;

	if (argc < 5 || (strcmp(argv[1], "race") && strcmp(argv[1], "mutate"))) {
		fprintf(stderr, "usage: rdif_race race|mutate DEV SECS INTERVAL [WRITERS READERS]\n");
		return 2;
	}
	mutate = !strcmp(argv[1], "mutate");
	dev = argv[2];
	secs = atoi(argv[3]);
	interval = (unsigned int)atoi(argv[4]);
	if (argc > 6) {
		nw = atoi(argv[5]);
		nr = atoi(argv[6]);
	}
	fd = open_dev();
	if (fd < 0)
		return 2;
	if (ioctl(fd, BLKSSZGET, &lbs) || !lbs || lbs > REGION || interval < 512 ||
	    interval > lbs || interval % 8 || nw < 1 || nr < 0 || nw + nr > MAX_THREADS) {
		fprintf(stderr, "rdif_race: bad arguments or device (block size %u)\n", lbs);
		return 2;
	}
	close(fd);
	if (mutate) {
		mbuf = alloc_buf();
		if (!mbuf)
			return 2;
		pthread_create(&t[n++], NULL, mutated_writer, mbuf);
		pthread_create(&t[n++], NULL, mutator, mbuf);
	} else {
		for (int i = 0; i < nw; i++)
			pthread_create(&t[n++], NULL, writer, (void *)(uintptr_t)i);
		for (int i = 0; i < nr; i++)
			pthread_create(&t[n++], NULL, reader, (void *)(uintptr_t)i);
	}
	sleep((unsigned int)secs);
	atomic_store(&stop, 1);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	bad = final_check(!mutate, &final_eilseq);
	printf("writes %lu (EILSEQ %lu, other errors %lu) reads %lu (EILSEQ %lu, other errors %lu) torn intervals %lu; final read: %d bad blocks (EILSEQ %lu)\n",
	       atomic_load(&writes), atomic_load(&write_eilseq), atomic_load(&write_err),
	       atomic_load(&reads), atomic_load(&read_eilseq), atomic_load(&read_err),
	       atomic_load(&torn), bad, final_eilseq);
	free(mbuf);
	if (atomic_load(&write_err) || atomic_load(&read_err) || atomic_load(&read_eilseq) ||
	    atomic_load(&torn) || bad || atomic_load(&writes) == 0)
		return 1;
	/* Racing writers with correct PI: none of their writes may fail either. */
	if (!mutate && atomic_load(&write_eilseq))
		return 1;
	return 0;
}
