// SPDX-License-Identifier: GPL-2.0
/*
 * rdif data integrity: O_DIRECT writes of random patterns at random aligned
 * offsets and lengths (single and multi-segment, up to 1 MiB, touching the
 * last block), read back and compared against an in-memory shadow copy of
 * the whole device; partial overwrites; zeroes where nothing was written;
 * I/O at and beyond the end; buffered/direct coherence; concurrent I/O.
 *
 * Each test loads a fresh rdif itself (finit_module on $RDIF_KO, 64 MiB, with
 * 512- and 4096-byte blocks) and unloads it afterwards. Needs root.
 * RDIF_SEED=N reproduces a run (the seed is logged), RDIF_RW_ITERS=N sets
 * the number of random I/Os (default 300).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "rdif_test.h"

#define DEV		"/dev/rdif0"
#define MAX_IO		(1024 * 1024)
#define ALIGN		4096
#define MAX_SEGS	8

/* splitmix64: small, seedable, good enough to pick offsets and patterns */
static uint64_t rnd_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rnd_below(uint64_t *s, uint64_t n)
{
	return n ? rnd_next(s) % n : 0;
}

/*
 * Fill BUF (LEN bytes, a multiple of 8) with a pattern unique to the
 * device offset OFF and the write's TAG, so misplaced or stale data is
 * recognisable.
 */
static void fill(void *buf, size_t len, uint64_t off, uint64_t tag)
{
	uint64_t *w = buf;

	for (size_t i = 0; i < len / 8; i++) {
		uint64_t s = (off + i * 8) ^ (tag << 32) ^ tag;

		w[i] = rnd_next(&s);
	}
}

static uint64_t seed_from_env(void)
{
	const char *e = getenv("RDIF_SEED");

	if (e && *e)
		return strtoull(e, NULL, 0);
	return (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
}

static int iters_from_env(void)
{
	const char *e = getenv("RDIF_RW_ITERS");

	return e && *e ? atoi(e) : 300;
}

FIXTURE(rw) {
	int fd;			/* O_RDWR | O_DIRECT */
	uint64_t size;
	unsigned int lbs;
	uint8_t *shadow;	/* what the device must contain */
	uint8_t *buf;		/* MAX_IO, aligned */
	uint8_t *rbuf;		/* MAX_IO, aligned */
	uint64_t seed;
};

FIXTURE_VARIANT(rw) {
	const char *params;
	uint64_t bytes;
	unsigned int lbs;
};

FIXTURE_VARIANT_ADD(rw, bs512) {
	.params = "size=64 blocksize=512", .bytes = 64 * RDIF_MIB, .lbs = 512,
};

FIXTURE_VARIANT_ADD(rw, bs4096) {
	.params = "size=64 blocksize=4096", .bytes = 64 * RDIF_MIB, .lbs = 4096,
};

FIXTURE_SETUP(rw)
{
	uint64_t size = 0;
	int err;

	if (geteuid() != 0)
		SKIP(return, "must run as root");
	err = rdif_load(variant->params, 1);
	ASSERT_EQ(0, err) TH_LOG("loading %s \"%s\": %s", rdif_ko_path(), variant->params,
				 strerror(-err));
	self->fd = open(DEV, O_RDWR | O_DIRECT | O_CLOEXEC);
	ASSERT_LE(0, self->fd) TH_LOG("open %s: %s", DEV, strerror(errno));
	ASSERT_EQ(0, ioctl(self->fd, BLKGETSIZE64, &size));
	ASSERT_EQ(variant->bytes, size);
	self->size = size;
	self->lbs = variant->lbs;
	self->shadow = calloc(1, size);
	ASSERT_NE(NULL, self->shadow);
	ASSERT_EQ(0, posix_memalign((void **)&self->buf, ALIGN, MAX_IO));
	ASSERT_EQ(0, posix_memalign((void **)&self->rbuf, ALIGN, MAX_IO));
	self->seed = seed_from_env();
	TH_LOG("seed %llu (RDIF_SEED=%llu reproduces)", (unsigned long long)self->seed,
	       (unsigned long long)self->seed);
}

FIXTURE_TEARDOWN_PARENT(rw)
{
	int err = rdif_unload();

	EXPECT_EQ(0, err) TH_LOG("unloading rdif: %s", strerror(-err));
}

/*
 * Split LEN bytes of BUF into up to MAX_SEGS iovecs of whole blocks (each
 * block-aligned in memory); returns the number of iovecs.
 */
static int split(uint64_t *rs, uint8_t *buf, size_t len, unsigned int lbs,
		 struct iovec *iov)
{
	size_t blocks = len / lbs, left = blocks;
	int n = 1 + (int)rnd_below(rs, MAX_SEGS), i;

	if ((size_t)n > blocks)
		n = (int)blocks;
	for (i = 0; i < n; i++) {
		size_t b = i == n - 1 ? left : 1 + rnd_below(rs, left - (n - 1 - i));

		iov[i].iov_base = buf;
		iov[i].iov_len = b * lbs;
		buf += b * lbs;
		left -= b;
	}
	return n;
}

/* Write LEN bytes at OFF with a fresh pattern, through 1..8 segments. */
static int do_write(struct __test_metadata *_metadata, FIXTURE_DATA(rw) *self,
		    uint64_t *rs, int fd, uint64_t off, size_t len)
{
	struct iovec iov[MAX_SEGS];
	uint64_t tag = rnd_next(rs);
	ssize_t r;
	int n;

	fill(self->buf, len, off, tag);
	if (rnd_below(rs, 2)) {
		n = split(rs, self->buf, len, self->lbs, iov);
		r = pwritev(fd, iov, n, (off_t)off);
	} else {
		n = 1;
		r = pwrite(fd, self->buf, len, (off_t)off);
	}
	if (r != (ssize_t)len) {
		TH_LOG("write %zu bytes at %llu (%d segments) returned %zd: %s", len,
		       (unsigned long long)off, n, r, r < 0 ? strerror(errno) : "short");
		_metadata->exit_code = KSFT_FAIL;
		return -1;
	}
	memcpy(self->shadow + off, self->buf, len);
	return 0;
}

/* Read [OFF, OFF+LEN) back (1..8 segments) and compare with the shadow. */
static int verify(struct __test_metadata *_metadata, FIXTURE_DATA(rw) *self,
		  uint64_t *rs, int fd, uint64_t off, size_t len)
{
	struct iovec iov[MAX_SEGS];
	ssize_t r;
	int n = 1;

	memset(self->rbuf, 0xa5, len);
	if (rnd_below(rs, 2)) {
		n = split(rs, self->rbuf, len, self->lbs, iov);
		r = preadv(fd, iov, n, (off_t)off);
	} else {
		r = pread(fd, self->rbuf, len, (off_t)off);
	}
	if (r != (ssize_t)len) {
		TH_LOG("read %zu bytes at %llu (%d segments) returned %zd: %s", len,
		       (unsigned long long)off, n, r, r < 0 ? strerror(errno) : "short");
		_metadata->exit_code = KSFT_FAIL;
		return -1;
	}
	if (memcmp(self->rbuf, self->shadow + off, len)) {
		size_t i = 0;

		while (self->rbuf[i] == self->shadow[off + i])
			i++;
		TH_LOG("data mismatch reading %zu bytes at %llu (%d segments): first bad byte at device offset %llu (block %llu): got %02x want %02x",
		       len, (unsigned long long)off, n, (unsigned long long)(off + i),
		       (unsigned long long)((off + i) / self->lbs), self->rbuf[i],
		       self->shadow[off + i]);
		_metadata->exit_code = KSFT_FAIL;
		return -1;
	}
	return 0;
}

static int verify_all(struct __test_metadata *_metadata, FIXTURE_DATA(rw) *self,
		      uint64_t *rs, int fd)
{
	for (uint64_t off = 0; off < self->size; off += MAX_IO)
		if (verify(_metadata, self, rs, fd, off, MAX_IO))
			return -1;
	return 0;
}

/* A random I/O length in whole blocks: often small, often large, sometimes 1 MiB. */
static size_t rnd_len(uint64_t *rs, unsigned int lbs)
{
	uint64_t k = rnd_below(rs, 100), blocks = MAX_IO / lbs;

	if (k < 20)
		return lbs;
	if (k < 45)
		return (1 + rnd_below(rs, 65536 / lbs)) * lbs;
	if (k < 90)
		return (1 + rnd_below(rs, blocks)) * lbs;
	return MAX_IO;
}

TEST_F_TIMEOUT(rw, fresh_device_reads_zero, 300)
{
	uint64_t rs = self->seed;

	ASSERT_EQ(0, verify_all(_metadata, self, &rs, self->fd));
}

TEST_F_TIMEOUT(rw, random_io, 600)
{
	uint64_t rs = self->seed;
	int iters = iters_from_env();

	for (int i = 0; i < iters; i++) {
		size_t len = rnd_len(&rs, self->lbs);
		uint64_t nblk = (self->size - len) / self->lbs;
		uint64_t off;

		if (rnd_below(&rs, 10) == 0)
			off = self->size - len;		/* ends at the last block */
		else if (rnd_below(&rs, 20) == 0)
			off = 0;
		else
			off = rnd_below(&rs, nblk + 1) * self->lbs;
		ASSERT_EQ(0, do_write(_metadata, self, &rs, self->fd, off, len))
			TH_LOG("iteration %d", i);
		ASSERT_EQ(0, verify(_metadata, self, &rs, self->fd, off, len))
			TH_LOG("iteration %d, right after the write", i);
		if (i % 16 == 15) {
			/* some other region, written or not */
			len = rnd_len(&rs, self->lbs);
			off = rnd_below(&rs, (self->size - len) / self->lbs + 1) * self->lbs;
			ASSERT_EQ(0, verify(_metadata, self, &rs, self->fd, off, len))
				TH_LOG("iteration %d, unrelated region", i);
		}
	}
	/* Everything, through a new open file. */
	close(self->fd);
	self->fd = open(DEV, O_RDWR | O_DIRECT | O_CLOEXEC);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, verify_all(_metadata, self, &rs, self->fd));
}

TEST_F(rw, last_block)
{
	uint64_t rs = self->seed, last = self->size - self->lbs;

	ASSERT_EQ(0, do_write(_metadata, self, &rs, self->fd, last, self->lbs));
	ASSERT_EQ(0, verify(_metadata, self, &rs, self->fd, last, self->lbs));
	/* the last 1 MiB: all zero but the last block */
	ASSERT_EQ(0, verify(_metadata, self, &rs, self->fd, self->size - MAX_IO, MAX_IO));
	ASSERT_EQ(0, do_write(_metadata, self, &rs, self->fd, self->size - MAX_IO, MAX_IO));
	close(self->fd);
	self->fd = open(DEV, O_RDWR | O_DIRECT | O_CLOEXEC);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, verify(_metadata, self, &rs, self->fd, self->size - 2 * MAX_IO, MAX_IO));
	ASSERT_EQ(0, verify(_metadata, self, &rs, self->fd, self->size - MAX_IO, MAX_IO));
	ASSERT_EQ(0, verify(_metadata, self, &rs, self->fd, 0, MAX_IO));
}

TEST_F(rw, partial_overwrite)
{
	uint64_t rs = self->seed, blocks = MAX_IO / self->lbs;
	uint64_t off = (1 + rnd_below(&rs, self->size / MAX_IO - 2)) * MAX_IO;

	for (int round = 0; round < 8; round++) {
		uint64_t first = rnd_below(&rs, blocks);
		uint64_t n = 1 + rnd_below(&rs, blocks - first);

		ASSERT_EQ(0, do_write(_metadata, self, &rs, self->fd, off, MAX_IO));
		/* overwrite a middle part, then the first and the last block */
		ASSERT_EQ(0, do_write(_metadata, self, &rs, self->fd, off + first * self->lbs,
				      n * self->lbs));
		ASSERT_EQ(0, do_write(_metadata, self, &rs, self->fd, off, self->lbs));
		ASSERT_EQ(0, do_write(_metadata, self, &rs, self->fd,
				      off + MAX_IO - self->lbs, self->lbs));
		/* the range, and its untouched neighbours (still zero) */
		ASSERT_EQ(0, verify(_metadata, self, &rs, self->fd, off, MAX_IO))
			TH_LOG("round %d: blocks %llu+%llu", round,
			       (unsigned long long)first, (unsigned long long)n);
		ASSERT_EQ(0, verify(_metadata, self, &rs, self->fd, off - MAX_IO, MAX_IO));
		ASSERT_EQ(0, verify(_metadata, self, &rs, self->fd, off + MAX_IO, MAX_IO));
	}
	for (size_t i = 0; i < MAX_IO; i++)
		if (self->shadow[off - MAX_IO + i] || self->shadow[off + MAX_IO + i])
			ASSERT_TRUE(0) TH_LOG("shadow bookkeeping bug");
}

TEST_F(rw, beyond_end)
{
	uint64_t rs = self->seed;
	unsigned int lbs = self->lbs;
	ssize_t r;

	errno = 0;
	r = pwrite(self->fd, self->buf, lbs, (off_t)self->size);
	EXPECT_EQ(-1, r);
	EXPECT_EQ(ENOSPC, errno) TH_LOG("write at the end: %s", strerror(errno));
	errno = 0;
	r = pwrite(self->fd, self->buf, lbs, (off_t)(self->size + MAX_IO));
	EXPECT_EQ(-1, r);
	EXPECT_EQ(ENOSPC, errno);
	EXPECT_EQ(0, pread(self->fd, self->rbuf, lbs, (off_t)self->size))
		TH_LOG("read at the end must return 0 (EOF)");
	EXPECT_EQ(0, pread(self->fd, self->rbuf, lbs, (off_t)(self->size + MAX_IO)));

	/* Spanning the end: truncated to what fits. */
	fill(self->buf, 2 * lbs, self->size - lbs, 7);
	r = pwrite(self->fd, self->buf, 2 * lbs, (off_t)(self->size - lbs));
	EXPECT_EQ((ssize_t)lbs, r) TH_LOG("write spanning the end returned %zd", r);
	if (r == (ssize_t)lbs)
		memcpy(self->shadow + self->size - lbs, self->buf, lbs);
	memset(self->rbuf, 0, 2 * lbs);
	r = pread(self->fd, self->rbuf, 2 * lbs, (off_t)(self->size - lbs));
	EXPECT_EQ((ssize_t)lbs, r) TH_LOG("read spanning the end returned %zd", r);
	EXPECT_EQ(0, memcmp(self->rbuf, self->shadow + self->size - lbs, lbs));
	ASSERT_EQ(0, verify(_metadata, self, &rs, self->fd, self->size - MAX_IO, MAX_IO));
}

/* Buffered writes reach the device; direct writes invalidate the page cache. */
TEST_F(rw, buffered_and_direct)
{
	uint64_t rs = self->seed;
	uint64_t off = rnd_below(&rs, (self->size - 4 * MAX_IO) / 512) * 512 + 123;
	size_t len = 3 * MAX_IO - 77;
	uint64_t blk = off / self->lbs * self->lbs;
	int bfd = open(DEV, O_RDWR | O_CLOEXEC);
	uint8_t *p;

	ASSERT_LE(0, bfd);
	p = malloc(len);
	ASSERT_NE(NULL, p);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)rnd_next(&rs);
	ASSERT_EQ((ssize_t)len, pwrite(bfd, p, len, (off_t)off));
	ASSERT_EQ(0, fsync(bfd));
	memcpy(self->shadow + off, p, len);
	ASSERT_EQ(0, verify(_metadata, self, &rs, self->fd, blk, MAX_IO));
	ASSERT_EQ(0, verify(_metadata, self, &rs, self->fd, blk + MAX_IO, MAX_IO));
	ASSERT_EQ(0, verify(_metadata, self, &rs, self->fd, blk + 2 * MAX_IO, MAX_IO));
	ASSERT_EQ(0, verify(_metadata, self, &rs, self->fd, blk + 3 * MAX_IO, MAX_IO));

	/* now overwrite directly and read through the (stale) page cache */
	ASSERT_EQ(0, do_write(_metadata, self, &rs, self->fd, blk, MAX_IO));
	ASSERT_EQ((ssize_t)MAX_IO, pread(bfd, p, MAX_IO, (off_t)blk));
	EXPECT_EQ(0, memcmp(p, self->shadow + blk, MAX_IO))
		TH_LOG("buffered read after a direct write returned stale data");
	free(p);
	close(bfd);
}

/* The value of counter NAME in rdif0's debugfs stats file, -1 if unknown. */
static long long rdif0_stat(const char *name)
{
	char key[64];
	long long v, found = -1;
	FILE *f = fopen("/sys/kernel/debug/rdif/rdif0/stats", "r");

	if (!f) {
		if (system("mount -t debugfs none /sys/kernel/debug 2>/dev/null"))
			return -1;
		f = fopen("/sys/kernel/debug/rdif/rdif0/stats", "r");
	}
	if (!f)
		return -1;
	while (fscanf(f, "%63s %lld", key, &v) == 2)
		if (!strcmp(key, name))
			found = v;
	fclose(f);
	return found;
}

/*
 * A memory device has no volatile write cache: it says so ("write
 * through"), so the block layer completes flushes without sending them,
 * and fsync still succeeds. (Flushes of file-backed devices, which do
 * have a cache, are tested with their durability in rdif_backing.sh.)
 */
TEST_F(rw, no_volatile_cache)
{
	uint64_t rs = self->seed;
	long long before, after;
	char wc[32] = "";
	FILE *f = fopen("/sys/block/rdif0/queue/write_cache", "r");

	ASSERT_NE(NULL, f);
	ASSERT_NE(NULL, fgets(wc, sizeof(wc), f));
	fclose(f);
	EXPECT_EQ(0, strcmp(wc, "write through\n")) TH_LOG("write_cache: %s", wc);
	before = rdif0_stat("flushes");
	ASSERT_LE(0, before) TH_LOG("no flushes counter in rdif0's debugfs stats");
	ASSERT_EQ(0, do_write(_metadata, self, &rs, self->fd, 0, MAX_IO));
	EXPECT_EQ(0, fsync(self->fd)) TH_LOG("fsync: %s", strerror(errno));
	EXPECT_EQ(0, fdatasync(self->fd));
	EXPECT_EQ(0, ioctl(self->fd, BLKFLSBUF, 0));
	after = rdif0_stat("flushes");
	EXPECT_EQ(before, after) TH_LOG("flushes reached a device without a cache");
	ASSERT_EQ(0, verify(_metadata, self, &rs, self->fd, 0, MAX_IO));
}

/*
 * Direct I/O whose vectors are smaller than a block (and a protection
 * interval): 320 vectors of 512 bytes, each followed by a 512-byte gap in
 * memory, so one 4 KiB interval spans eight segments and the request
 * needs two bios (more than BIO_MAX_VECS segments). What blktests'
 * block/042 (test_max_vector_limits) does on a device whose dma_alignment
 * is 511; rdif must store and return every vector exactly, with auto-PI
 * computed across the segments. Misaligned vectors and lengths that are
 * not whole blocks are refused by the block layer.
 */
TEST_F(rw, sub_block_vectors)
{
	enum { NVEC = 320, VLEN = 512 };
	struct iovec iov[NVEC];
	uint8_t *out, *in;
	size_t total = (size_t)NVEC * VLEN;

	ASSERT_EQ(0, posix_memalign((void **)&out, ALIGN, 2 * total));
	ASSERT_EQ(0, posix_memalign((void **)&in, ALIGN, 2 * total));
	fill(out, 2 * total, 0, rnd_next(&self->seed));
	for (int i = 0; i < NVEC; i++)
		iov[i] = (struct iovec){ .iov_base = out + 2 * i * VLEN, .iov_len = VLEN };
	ASSERT_EQ((ssize_t)total, pwritev(self->fd, iov, NVEC, 0))
		TH_LOG("pwritev: %s", strerror(errno));
	for (int i = 0; i < NVEC; i++)
		memcpy(self->shadow + i * VLEN, out + 2 * i * VLEN, VLEN);

	memset(in, 0xa5, 2 * total);
	for (int i = 0; i < NVEC; i++)
		iov[i].iov_base = in + 2 * i * VLEN;
	ASSERT_EQ((ssize_t)total, preadv(self->fd, iov, NVEC, 0))
		TH_LOG("preadv: %s", strerror(errno));
	for (int i = 0; i < NVEC; i++) {
		EXPECT_EQ(0, memcmp(in + 2 * i * VLEN, out + 2 * i * VLEN, VLEN))
			TH_LOG("vector %d differs", i);
		for (int j = 0; j < VLEN; j++)
			if (in[(2 * i + 1) * VLEN + j] != 0xa5) {
				EXPECT_EQ(0xa5, in[(2 * i + 1) * VLEN + j])
					TH_LOG("the gap after vector %d was written", i);
				break;
			}
	}
	/* The same data read contiguously. */
	ASSERT_EQ((ssize_t)total, pread(self->fd, self->rbuf, total, 0));
	EXPECT_EQ(0, memcmp(self->rbuf, self->shadow, total));

	/* A vector not aligned to 512 bytes, a length not a whole block. */
	iov[0] = (struct iovec){ .iov_base = out + 256, .iov_len = self->lbs };
	EXPECT_EQ(-1, pwritev(self->fd, iov, 1, 0));
	EXPECT_EQ(EINVAL, errno);
	iov[0] = (struct iovec){ .iov_base = out, .iov_len = self->lbs + self->lbs / 2 };
	EXPECT_EQ(-1, pwritev(self->fd, iov, 1, 0));
	EXPECT_EQ(EINVAL, errno);
	ASSERT_EQ((ssize_t)total, pread(self->fd, self->rbuf, total, 0));
	EXPECT_EQ(0, memcmp(self->rbuf, self->shadow, total)) TH_LOG("a refused write changed data");
	free(out);
	free(in);
}

#define NTHREADS 4

struct worker {
	FIXTURE_DATA(rw) *self;
	uint64_t base, span, seed;
	int iters;
	char err[256];
};

/* Each thread writes and checks its own quarter of the device, on its own fd. */
static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	uint8_t *buf, *rbuf;
	unsigned int lbs = w->self->lbs;
	int fd = open(DEV, O_RDWR | O_DIRECT | O_CLOEXEC);

	if (fd < 0) {
		snprintf(w->err, sizeof(w->err), "open: %s", strerror(errno));
		return NULL;
	}
	if (posix_memalign((void **)&buf, ALIGN, MAX_IO) ||
	    posix_memalign((void **)&rbuf, ALIGN, MAX_IO)) {
		snprintf(w->err, sizeof(w->err), "out of memory");
		close(fd);
		return NULL;
	}
	for (int i = 0; i < w->iters && !w->err[0]; i++) {
		size_t len = rnd_len(&w->seed, lbs);
		uint64_t off = w->base +
			rnd_below(&w->seed, (w->span - len) / lbs + 1) * lbs;
		uint64_t tag = rnd_next(&w->seed);
		ssize_t r;

		fill(buf, len, off, tag);
		r = pwrite(fd, buf, len, (off_t)off);
		if (r != (ssize_t)len) {
			snprintf(w->err, sizeof(w->err), "write %zu at %llu: %zd %s", len,
				 (unsigned long long)off, r, strerror(errno));
			break;
		}
		memcpy(w->self->shadow + off, buf, len);
		r = pread(fd, rbuf, len, (off_t)off);
		if (r != (ssize_t)len || memcmp(rbuf, buf, len))
			snprintf(w->err, sizeof(w->err), "read back %zu at %llu: %zd %s", len,
				 (unsigned long long)off, r,
				 r == (ssize_t)len ? "data mismatch" : strerror(errno));
	}
	free(buf);
	free(rbuf);
	close(fd);
	return NULL;
}

TEST_F_TIMEOUT(rw, concurrent_disjoint, 600)
{
	struct worker w[NTHREADS];
	pthread_t t[NTHREADS];
	uint64_t rs = self->seed, span = self->size / NTHREADS;
	int iters = iters_from_env() / 2;

	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ .self = self, .base = i * span, .span = span,
					.seed = rnd_next(&rs), .iters = iters };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, worker_fn, &w[i]));
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], NULL);
		EXPECT_EQ(0, w[i].err[0]) TH_LOG("thread %d: %s", i, w[i].err);
	}
	ASSERT_EQ(0, verify_all(_metadata, self, &rs, self->fd));
}

TEST_HARNESS_MAIN
