// SPDX-License-Identifier: GPL-2.0
/*
 * rdif_pi - O_DIRECT I/O with user-supplied protection information.
 *
 * Writes and reads a block device through io_uring with a PI attribute
 * (IORING_RW_ATTR_FLAG_PI, struct io_uring_attr_pi), generating correct PI
 * for the data in any format the device reports through FS_IOC_GETLBMD_CAP,
 * optionally corrupting one field of one interval, and dumping or checking
 * the PI a read returns. Used by rdif's selftests; useful on its own.
 *
 *   rdif_pi cap DEV
 *   rdif_pi write DEV OFFSET LEN [options]
 *   rdif_pi read DEV OFFSET LEN [options]
 *   rdif_pi phys FILE
 *
 * phys prints the physical byte offset, on the file system's device, of
 * FILE's first extent (FS_IOC_FIEMAP, after syncing the file); it fails if
 * the file has no extent or its first one is not plain allocated data
 * (delayed allocation, unwritten, inline, encoded, ...).
 *
 * Options:
 *   --chk LIST      io_uring check flags: guard,ref,app (default: none)
 *   --app-tag N     application tag written and checked (default 0)
 *   --seed N        reference tag seed (default: OFFSET / interval)
 *   --pattern N     data pattern seed (default 1); data is a function of
 *                   the pattern and the byte's device offset
 *   --corrupt F     write: spoil field F (guard, ref, app, data) of interval
 *                   --at I (default 0) after PI generation
 *   --at I          interval index inside the request for --corrupt
 *   --no-pi         plain O_DIRECT pwrite/pread without a PI attribute
 *   --verify        read: check data pattern and PI (guard, ref = seed + i,
 *                   app = --app-tag unless escape); exit 3 on a mismatch
 *   --expect-zero   read: check the data is zero and the PI is escape
 *   --atomic        write: RWF_ATOMIC (the write must never be torn)
 *   --pieces N      write: as separate requests of N bytes, in order
 *   --burst K       write: K writes of the whole range submitted at once
 *                   (one io_uring_enter), the j-th with pattern PATTERN+j
 *                   and its PI; the device applies them in an order of
 *                   its own (K <= 16)
 *   --which BS P1,P2,...
 *                   read: print, for each BS-byte block, the first pattern
 *                   all its intervals hold with their PI (0: zeroes with
 *                   escape PI), or "torn"
 *   --dump          read: print each interval's metadata
 *   --pi-out FILE   read: write the raw metadata to FILE
 *   --pi-in FILE    write: take the raw metadata from FILE
 *   --data-in FILE  write: take the data from FILE (LEN bytes) instead of
 *                   the pattern
 *   --dsync         write: open the device O_DSYNC; the io_uring write is
 *                   then a FUA write with no flush after it (the block
 *                   layer's asynchronous direct I/O syncs with FUA alone)
 *   --mutate SECS   write: for SECS seconds, write random pieces (1 to 16
 *                   intervals) of the request, each with its PI, while
 *                   another thread keeps flipping a byte of the piece in
 *                   flight and flipping it back; each write must succeed
 *                   or fail with EILSEQ (the device saw data its PI does
 *                   not cover), nothing else, at least one must succeed,
 *                   and each piece that succeeded must read back at once
 *                   as the pattern with exactly its PI. Prints the counts.
 *
 * rdif_pi header-crc FILE  recomputes the header checksum of a backing
 * store (for crafted-header tests).
 *
 * Exit status: 0 on success, the errno of a failed I/O (e.g. 84 = EILSEQ),
 * 3 for a --verify mismatch, 2 for usage errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <linux/io_uring.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* ---- checksums (user-space reference implementations) ---- */

static uint16_t crc16_t10dif(uint16_t crc, const uint8_t *p, size_t len)
{
	while (len--) {
		crc ^= (uint16_t)*p++ << 8;
		for (int i = 0; i < 8; i++)
			crc = crc & 0x8000 ? (crc << 1) ^ 0x8bb7 : crc << 1;
	}
	return crc;
}

static uint64_t crc64_nvme_table[256];

static void crc64_init(void)
{
	for (int i = 0; i < 256; i++) {
		uint64_t c = i;

		for (int j = 0; j < 8; j++)
			c = c & 1 ? (c >> 1) ^ 0x9a6c9329ac4bc9b5ULL : c >> 1;
		crc64_nvme_table[i] = c;
	}
}

/* Same convention as the kernel's crc64_nvme(): pass 0 to start. */
static uint64_t crc64_nvme(uint64_t crc, const uint8_t *p, size_t len)
{
	crc = ~crc;
	while (len--)
		crc = crc64_nvme_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* One's complement sum, 16-bit words in memory order, as csum_partial. */
static uint32_t ip_sum(uint32_t sum, const uint8_t *p, size_t len)
{
	uint64_t s = sum;

	for (; len >= 2; p += 2, len -= 2) {
		uint16_t w;

		memcpy(&w, p, 2);
		s += w;
	}
	if (len) {
		uint16_t w = 0;

		memcpy(&w, p, 1);
		s += w;
	}
	while (s >> 32)
		s = (s & 0xffffffff) + (s >> 32);
	return s;
}

static uint16_t ip_fold(uint32_t s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return ~s;
}

/* ---- format ---- */

struct fmt {
	unsigned int csum;	/* LBMD_PI_CSUM_* */
	bool ref_tag;
	unsigned int interval;
	unsigned int md_size;
	unsigned int pi_offset;
	unsigned int pi_size;
};

static int get_fmt(int fd, struct fmt *f, bool print)
{
	struct logical_block_metadata_cap cap;

	memset(&cap, 0, sizeof(cap));
	if (ioctl(fd, FS_IOC_GETLBMD_CAP, &cap) < 0)
		return -errno;
	f->csum = cap.lbmd_guard_tag_type;
	f->ref_tag = cap.lbmd_flags & LBMD_PI_CAP_REFTAG;
	f->interval = cap.lbmd_interval;
	f->md_size = cap.lbmd_size;
	f->pi_offset = cap.lbmd_pi_offset;
	f->pi_size = cap.lbmd_pi_size;
	if (print)
		printf("flags=0x%x interval=%u size=%u opaque_size=%u opaque_offset=%u "
		       "pi_size=%u pi_offset=%u guard_tag_type=%u app_tag_size=%u "
		       "ref_tag_size=%u storage_tag_size=%u\n",
		       cap.lbmd_flags, cap.lbmd_interval, cap.lbmd_size,
		       cap.lbmd_opaque_size, cap.lbmd_opaque_offset,
		       cap.lbmd_pi_size, cap.lbmd_pi_offset,
		       cap.lbmd_guard_tag_type, cap.lbmd_app_tag_size,
		       cap.lbmd_ref_tag_size, cap.lbmd_storage_tag_size);
	return 0;
}

static uint64_t ref_mask(const struct fmt *f)
{
	return f->csum == LBMD_PI_CSUM_CRC64_NVME ? (1ULL << 48) - 1 : 0xffffffffULL;
}

static uint64_t guard_of(const struct fmt *f, const uint8_t *data, const uint8_t *md)
{
	switch (f->csum) {
	case LBMD_PI_CSUM_CRC16_T10DIF:
		return crc16_t10dif(crc16_t10dif(0, data, f->interval), md, f->pi_offset);
	case LBMD_PI_CSUM_CRC64_NVME:
		return crc64_nvme(crc64_nvme(0, data, f->interval), md, f->pi_offset);
	case LBMD_PI_CSUM_IP:
		return ip_fold(ip_sum(ip_sum(0, data, f->interval), md, f->pi_offset));
	}
	return 0;
}

struct tuple {
	uint64_t guard;
	uint16_t app;
	uint64_t ref;
};

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = v;
}

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static void encode(const struct fmt *f, uint8_t *md, const struct tuple *t)
{
	uint8_t *p = md + f->pi_offset;

	if (f->csum == LBMD_PI_CSUM_CRC64_NVME) {
		put_be(p, t->guard, 8);
		put_be(p + 8, t->app, 2);
		put_be(p + 10, t->ref, 6);
	} else if (f->csum) {
		if (f->csum == LBMD_PI_CSUM_IP) {
			uint16_t g = t->guard;

			memcpy(p, &g, 2);
		} else {
			put_be(p, t->guard, 2);
		}
		put_be(p + 2, t->app, 2);
		put_be(p + 4, t->ref, 4);
	}
}

static void decode(const struct fmt *f, const uint8_t *md, struct tuple *t)
{
	const uint8_t *p = md + f->pi_offset;

	if (f->csum == LBMD_PI_CSUM_CRC64_NVME) {
		t->guard = get_be(p, 8);
		t->app = get_be(p + 8, 2);
		t->ref = get_be(p + 10, 6);
	} else {
		if (f->csum == LBMD_PI_CSUM_IP) {
			uint16_t g;

			memcpy(&g, p, 2);
			t->guard = g;
		} else {
			t->guard = get_be(p, 2);
		}
		t->app = get_be(p + 2, 2);
		t->ref = get_be(p + 4, 4);
	}
}

static bool is_escape(const struct fmt *f, const struct tuple *t)
{
	return t->app == 0xffff && (f->ref_tag || t->ref == ref_mask(f));
}

/* ---- data pattern ---- */

static uint8_t pattern_byte(uint64_t pattern, uint64_t off)
{
	uint64_t x = (off >> 3) * 0x9e3779b97f4a7c15ULL ^ pattern * 0xbf58476d1ce4e5b9ULL;

	x ^= x >> 31;
	return x >> (8 * (off & 7));
}

/* ---- io_uring, without liburing ---- */

struct ring {
	int fd;
	unsigned int *sq_tail, *sq_mask, *sq_array;
	unsigned int *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};

static int ring_init(struct ring *r)
{
	struct io_uring_params p;
	void *sq, *cq;

	memset(&p, 0, sizeof(p));
	r->fd = syscall(__NR_io_uring_setup, 16, &p);
	if (r->fd < 0)
		return -errno;
	if (!(p.features & IORING_FEAT_RW_ATTR))
		return -EOPNOTSUPP;
	sq = mmap(NULL, p.sq_off.array + p.sq_entries * sizeof(unsigned int),
		  PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQ_RING);
	cq = mmap(NULL, p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe),
		  PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe),
		       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || r->sqes == MAP_FAILED)
		return -errno;
	r->sq_tail = (unsigned int *)((char *)sq + p.sq_off.tail);
	r->sq_mask = (unsigned int *)((char *)sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned int *)((char *)sq + p.sq_off.array);
	r->cq_head = (unsigned int *)((char *)cq + p.cq_off.head);
	r->cq_tail = (unsigned int *)((char *)cq + p.cq_off.tail);
	r->cq_mask = (unsigned int *)((char *)cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)((char *)cq + p.cq_off.cqes);
	return 0;
}

#ifndef RWF_ATOMIC
#define RWF_ATOMIC 0x00000040
#endif

/* RWF_* flags of every write (--atomic). */
static int write_flags;

/* Queues one read or write with a PI attribute (not submitted yet). */
static void ring_queue(struct ring *r, int op, int fd, void *buf, size_t len, uint64_t off,
		       struct io_uring_attr_pi *pi)
{
	unsigned int tail = *r->sq_tail, idx = tail & *r->sq_mask;
	struct io_uring_sqe *sqe = &r->sqes[idx];

	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = op;
	sqe->fd = fd;
	sqe->addr = (uintptr_t)buf;
	sqe->len = len;
	sqe->off = off;
	if (op == IORING_OP_WRITE)
		sqe->rw_flags = write_flags;
	if (pi) {
		sqe->attr_ptr = (uintptr_t)pi;
		sqe->attr_type_mask = IORING_RW_ATTR_FLAG_PI;
	}
	r->sq_array[idx] = idx;
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
}

/* One read or write with a PI attribute; returns bytes done or -errno. */
static int ring_rw(struct ring *r, int op, int fd, void *buf, size_t len, uint64_t off,
		   struct io_uring_attr_pi *pi)
{
	unsigned int head;
	int ret;

	ring_queue(r, op, fd, buf, len, off, pi);
	ret = syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
	if (ret < 0)
		return -errno;
	head = *r->cq_head;
	if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
		return -EIO;
	ret = r->cqes[head & *r->cq_mask].res;
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	return ret;
}

/* ---- physical location of a file ---- */

/*
 * Print the physical byte offset of the first extent of @path. Only a plain
 * allocated extent qualifies: anything whose data is not at a known place
 * of its own on the device is refused.
 */
static int do_phys(const char *path)
{
	const unsigned int bad = FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC |
		FIEMAP_EXTENT_ENCODED | FIEMAP_EXTENT_DATA_ENCRYPTED |
		FIEMAP_EXTENT_NOT_ALIGNED | FIEMAP_EXTENT_DATA_INLINE |
		FIEMAP_EXTENT_DATA_TAIL | FIEMAP_EXTENT_UNWRITTEN;
	struct fiemap *fm;
	struct fiemap_extent *fe;
	int fd, ret = 0;

	fd = open(path, O_RDONLY);
	if (fd < 0) {
		perror(path);
		return errno;
	}
	fm = calloc(1, sizeof(*fm) + sizeof(*fe));
	if (!fm) {
		close(fd);
		return ENOMEM;
	}
	fm->fm_start = 0;
	fm->fm_length = FIEMAP_MAX_OFFSET;
	fm->fm_flags = FIEMAP_FLAG_SYNC;
	fm->fm_extent_count = 1;
	if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0) {
		ret = errno;
		fprintf(stderr, "rdif_pi: FS_IOC_FIEMAP %s: %s\n", path, strerror(ret));
		goto out;
	}
	fe = &fm->fm_extents[0];
	if (!fm->fm_mapped_extents) {
		fprintf(stderr, "rdif_pi: %s has no extent\n", path);
		ret = ENODATA;
	} else if (fe->fe_flags & bad) {
		fprintf(stderr, "rdif_pi: %s: first extent is not plain data (flags 0x%x)\n",
			path, fe->fe_flags);
		ret = EINVAL;
	} else {
		printf("%llu\n", (unsigned long long)fe->fe_physical);
	}
out:
	free(fm);
	close(fd);
	return ret;
}

/* ---- command line ---- */

struct opts {
	unsigned int chk;
	uint16_t app_tag;
	bool seed_set;
	uint64_t seed;
	uint64_t pattern;
	const char *corrupt;
	unsigned int at;
	bool no_pi, verify, expect_zero, dump;
	unsigned int mutate;
	/* --pieces: write in separate requests of this many bytes */
	unsigned int pieces;
	/* --burst: this many writes of the range at once */
	unsigned int burst;
	/* --which: block size and the patterns to tell apart */
	unsigned int which_bs, nr_which;
	uint64_t which[16];
	const char *pi_out, *pi_in, *data_in;
};

static void usage(void)
{
	fprintf(stderr,
		"usage: rdif_pi cap DEV\n"
		"       rdif_pi phys FILE\n"
		"       rdif_pi header-crc FILE\n"
		"       rdif_pi write|read DEV OFFSET LEN [--chk guard,ref,app] [--app-tag N]\n"
		"               [--seed N] [--pattern N] [--corrupt guard|ref|app|data] [--at I]\n"
		"               [--no-pi] [--verify] [--expect-zero] [--dump] [--dsync]\n"
		"               [--which BS P1,P2,...] [--atomic] [--pieces N] [--burst K]\n"
		"               [--pi-out FILE] [--pi-in FILE] [--data-in FILE] [--mutate SECS]\n");
	exit(2);
}

static uint64_t num(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);

	if (!*s || *end) {
		fprintf(stderr, "rdif_pi: not a number: %s\n", s);
		exit(2);
	}
	return v;
}

static unsigned int parse_chk(const char *s)
{
	unsigned int f = 0;
	char *copy = strdup(s), *tok, *save = NULL;

	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "guard"))
			f |= IO_INTEGRITY_CHK_GUARD;
		else if (!strcmp(tok, "ref"))
			f |= IO_INTEGRITY_CHK_REFTAG;
		else if (!strcmp(tok, "app"))
			f |= IO_INTEGRITY_CHK_APPTAG;
		else if (strcmp(tok, "none"))
			usage();
	}
	free(copy);
	return f;
}

/* The PI attribute of one I/O: the metadata buffer, checks, tags, seed. */
static void pi_attr(struct io_uring_attr_pi *pi, const struct opts *o, uint8_t *md,
		    size_t md_len)
{
	memset(pi, 0, sizeof(*pi));
	pi->flags = o->chk;
	pi->app_tag = o->app_tag;
	pi->len = md_len;
	pi->addr = (uintptr_t)md;
	pi->seed = o->seed;
}

struct mutator {
	uint8_t *buf;
	/* the piece being written: offset << 32 | length, in buf */
	atomic_uint_fast64_t piece;
	atomic_int stop;
};

/*
 * Flips a random byte of the piece being written, lets it be seen, flips it
 * back.
 */
static void *mutator(void *arg)
{
	struct mutator *m = arg;
	uint64_t s = 0x5eed;

	while (!atomic_load(&m->stop)) {
		uint64_t piece = atomic_load(&m->piece);
		volatile uint8_t *b;

		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		b = &m->buf[(piece >> 32) + (s >> 33) % (uint32_t)piece];
		*b ^= 0xff;
		for (volatile int spin = 0; spin < 200; spin++)
			;
		*b ^= 0xff;
		for (volatile int spin = 0; spin < 2000; spin++)
			;
	}
	return NULL;
}

/*
 * --pieces: the write as separate requests of o->pieces bytes each, one
 * after the other (each with its part of the PI in @whole).
 */
static int write_pieces(struct ring *r, int fd, const struct fmt *f, const struct opts *o,
			uint8_t *data, size_t len, uint64_t off,
			const struct io_uring_attr_pi *whole)
{
	size_t per = o->pieces / f->interval;

	for (size_t at = 0; at < len; at += o->pieces) {
		struct io_uring_attr_pi pi = *whole;
		size_t k = at / f->interval;
		int ret;

		pi.addr += k * f->md_size;
		pi.len = per * f->md_size;
		pi.seed += k;
		ret = ring_rw(r, IORING_OP_WRITE, fd, data + at, o->pieces, off + at, &pi);
		if (ret < 0)
			return -ret;
		if (ret != (int)o->pieces)
			return EIO;
	}
	return 0;
}

/*
 * The --mutate loop: writes of random pieces (1 to 16 intervals) of the
 * request again and again under a mutator, each with its part of the PI
 * in @md; each piece written is read back at once (the device checking
 * guard and ref) and must be the pattern with exactly that PI.
 */
static int write_mutated(struct ring *r, int fd, const struct fmt *f, const struct opts *o,
			 uint8_t *data, const uint8_t *md, size_t len, uint64_t off,
			 const struct io_uring_attr_pi *whole)
{
	struct mutator m = { .buf = data, .piece = f->interval };
	unsigned long ok = 0, eilseq = 0, other = 0, bad = 0;
	time_t end = time(NULL) + o->mutate;
	size_t n = len / f->interval;
	uint8_t *rdata, *rmd;
	uint64_t s = 0xfeed;
	pthread_t t;
	int ret;

	if (posix_memalign((void **)&rdata, 4096, len))
		return ENOMEM;
	rmd = calloc(1, n * f->md_size);
	if (!rmd || pthread_create(&t, NULL, mutator, &m))
		return ENOMEM;
	while (time(NULL) < end) {
		struct io_uring_attr_pi pi = *whole, rpi;
		size_t k, cnt, plen, at, i;

		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		k = (s >> 33) % n;
		cnt = 1 + (s >> 13) % (n - k < 16 ? n - k : 16);
		plen = cnt * f->interval;
		at = k * f->interval;
		pi.addr += k * f->md_size;
		pi.len = cnt * f->md_size;
		pi.seed += k;
		/* (the mutator may still change the previous piece once) */
		atomic_store(&m.piece, (uint64_t)at << 32 | plen);
		ret = ring_rw(r, IORING_OP_WRITE, fd, data + at, plen, off + at, &pi);
		if (ret == -EILSEQ) {
			eilseq++;
			continue;
		}
		if (ret != (int)plen) {
			if (other++ == 0)
				fprintf(stderr, "rdif_pi: mutated write: %s\n",
					ret < 0 ? strerror(-ret) : "short");
			continue;
		}
		ok++;
		rpi = pi;
		rpi.addr = (uintptr_t)rmd;
		ret = ring_rw(r, IORING_OP_READ, fd, rdata, plen, off + at, &rpi);
		for (i = 0; ret == (int)plen && i < plen; i++)
			if (rdata[i] != pattern_byte(o->pattern, off + at + i))
				break;
		if (ret != (int)plen || i < plen ||
		    memcmp(rmd, md + k * f->md_size, cnt * f->md_size)) {
			if (bad++ == 0)
				fprintf(stderr, "rdif_pi: piece at %" PRIu64 " (%zu bytes) read back %s\n",
					off + at, plen,
					ret < 0 ? strerror(-ret) : ret != (int)plen ? "short" :
					i < plen ? "with other data" : "with other PI");
		}
	}
	atomic_store(&m.stop, 1);
	pthread_join(t, NULL);
	printf("mutated writes: %lu succeeded, %lu EILSEQ, %lu other errors; %lu read back wrong\n",
	       ok, eilseq, other, bad);
	free(rdata);
	free(rmd);
	return other || bad || !ok ? EIO : 0;
}

/* The metadata of @n intervals of @data: opaque pattern bytes and PI. */
static void make_pi(const struct fmt *f, const struct opts *o, const uint8_t *data,
		    uint8_t *md, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t *m = md + i * f->md_size;
		struct tuple t;

		/* opaque bytes: a recognisable pattern */
		for (unsigned int b = 0; b < f->md_size; b++)
			m[b] = 0xa0 + (b & 0xf);
		if (!f->csum)
			continue;
		t.guard = guard_of(f, data + i * f->interval, m);
		t.app = o->app_tag;
		t.ref = (o->seed + i) & ref_mask(f);
		encode(f, m, &t);
	}
}

#define MAX_BURST 16

/*
 * --burst: o->burst writes of the whole range submitted with one
 * io_uring_enter, the j-th with data pattern o->pattern + j and its PI.
 */
static int write_burst(struct ring *r, int fd, const struct fmt *f, const struct opts *o,
		       size_t len, uint64_t off)
{
	size_t n = len / f->interval, md_len = n * f->md_size;
	struct io_uring_attr_pi pi[MAX_BURST];
	uint8_t *data[MAX_BURST] = { 0 }, *md[MAX_BURST] = { 0 };
	unsigned int k = o->burst, j, head;
	int ret = 0;

	for (j = 0; j < k; j++) {
		struct opts oj = *o;

		oj.pattern = o->pattern + j;
		md[j] = calloc(1, md_len);
		if (!md[j] || posix_memalign((void **)&data[j], 4096, len)) {
			ret = ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < len; i++)
			data[j][i] = pattern_byte(oj.pattern, off + i);
		make_pi(f, &oj, data[j], md[j], n);
		pi_attr(&pi[j], &oj, md[j], md_len);
		ring_queue(r, IORING_OP_WRITE, fd, data[j], len, off, &pi[j]);
	}
	if (syscall(__NR_io_uring_enter, r->fd, k, k, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
		ret = errno;
		goto out;
	}
	for (j = 0; j < k; j++) {
		head = *r->cq_head;
		if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE)) {
			ret = EIO;
			break;
		}
		if (r->cqes[head & *r->cq_mask].res != (int)len && !ret)
			ret = EIO;
		__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	}
out:
	for (j = 0; j < k; j++) {
		free(data[j]);
		free(md[j]);
	}
	return ret;
}

static int do_write(int fd, const struct fmt *f, uint64_t off, size_t len,
		    const struct opts *o, struct ring *r)
{
	size_t n = len / f->interval, md_len = n * f->md_size;
	uint8_t *data, *md = NULL;
	struct io_uring_attr_pi pi;
	int ret;

	if (o->burst)
		return write_burst(r, fd, f, o, len, off);
	if (posix_memalign((void **)&data, 4096, len))
		return ENOMEM;
	if (o->data_in) {
		FILE *in = fopen(o->data_in, "rb");

		size_t got = in ? fread(data, 1, len, in) : 0;

		if (in)
			fclose(in);
		if (got != len) {
			fprintf(stderr, "rdif_pi: cannot read %zu bytes from %s\n", len, o->data_in);
			free(data);
			return 2;
		}
	} else {
		for (size_t i = 0; i < len; i++)
			data[i] = pattern_byte(o->pattern, off + i);
	}
	if (o->no_pi) {
		struct iovec iov = { .iov_base = data, .iov_len = len };

		/* pwritev2() for the RWF_* flags (--atomic) */
		ret = pwritev2(fd, &iov, 1, off, write_flags) == (ssize_t)len ? 0 :
		      errno ? errno : EIO;
		free(data);
		return ret;
	}
	md = calloc(1, md_len ? md_len : 1);
	if (o->pi_in) {
		FILE *in = fopen(o->pi_in, "rb");

		if (!in || fread(md, 1, md_len, in) != md_len) {
			fprintf(stderr, "rdif_pi: cannot read %zu bytes from %s\n", md_len, o->pi_in);
			return 2;
		}
		fclose(in);
	} else {
		make_pi(f, o, data, md, n);
	}
	if (o->corrupt) {
		uint8_t *m = md + (size_t)o->at * f->md_size + f->pi_offset;
		unsigned int big = f->csum == LBMD_PI_CSUM_CRC64_NVME;

		if (o->at >= n)
			usage();
		if (!strcmp(o->corrupt, "guard"))
			m[0] ^= 0x01;
		else if (!strcmp(o->corrupt, "app"))
			m[big ? 9 : 3] ^= 0x01;
		else if (!strcmp(o->corrupt, "ref"))
			m[big ? 15 : 7] ^= 0x01;
		else if (!strcmp(o->corrupt, "data"))
			data[(size_t)o->at * f->interval] ^= 0x01;
		else
			usage();
	}
	pi_attr(&pi, o, md, md_len);
	if (o->mutate) {
		ret = write_mutated(r, fd, f, o, data, md, len, off, &pi);
		free(data);
		free(md);
		return ret;
	}
	if (o->pieces) {
		ret = write_pieces(r, fd, f, o, data, len, off, &pi);
		free(data);
		free(md);
		return ret;
	}
	ret = ring_rw(r, IORING_OP_WRITE, fd, data, len, off, &pi);
	free(data);
	free(md);
	if (ret < 0)
		return -ret;
	return ret == (int)len ? 0 : EIO;
}

/*
 * Whether interval @i of a read (@data, its metadata @md, at device offset
 * @off) holds pattern @p with its PI (guard, app tag, ref seed + i);
 * pattern 0 means zeroes with escape PI (never written, or reset).
 */
static bool holds(const struct fmt *f, const struct opts *o, const uint8_t *data,
		  const uint8_t *md, uint64_t off, size_t i, uint64_t p)
{
	const uint8_t *d = data + i * f->interval, *m = md + i * f->md_size;
	struct tuple t = { 0 };

	for (size_t b = 0; b < f->interval; b++)
		if (d[b] != (p ? pattern_byte(p, off + i * f->interval + b) : 0))
			return false;
	if (!f->csum)
		return true;
	decode(f, m, &t);
	if (!p)
		return is_escape(f, &t);
	return !is_escape(f, &t) && t.guard == guard_of(f, d, m) && t.app == o->app_tag &&
	       (!f->ref_tag || t.ref == ((o->seed + i) & ref_mask(f)));
}

/*
 * --which: for each block of the read, the first of the patterns that all
 * of its intervals hold (see holds()), or "torn"; on one line.
 */
static void print_which(const struct fmt *f, const struct opts *o, const uint8_t *data,
			const uint8_t *md, uint64_t off, size_t len)
{
	size_t per = o->which_bs / f->interval;

	for (size_t blk = 0; blk < len / o->which_bs; blk++) {
		const char *what = "torn";
		char buf[24];

		for (unsigned int k = 0; k < o->nr_which; k++) {
			size_t i;

			for (i = blk * per; i < (blk + 1) * per; i++)
				if (!holds(f, o, data, md, off, i, o->which[k]))
					break;
			if (i == (blk + 1) * per) {
				snprintf(buf, sizeof(buf), "%" PRIu64, o->which[k]);
				what = buf;
				break;
			}
		}
		printf("%s ", what);
	}
	printf("\n");
}

static int do_read(int fd, const struct fmt *f, uint64_t off, size_t len,
		   const struct opts *o, struct ring *r)
{
	size_t n = len / f->interval, md_len = n * f->md_size;
	struct io_uring_attr_pi pi;
	uint8_t *data, *md;
	int ret, bad = 0;

	if (posix_memalign((void **)&data, 4096, len))
		return ENOMEM;
	md = calloc(1, md_len ? md_len : 1);
	if (o->no_pi) {
		ret = pread(fd, data, len, off) == (ssize_t)len ? 0 : errno ? errno : EIO;
	} else {
		pi_attr(&pi, o, md, md_len);
		ret = ring_rw(r, IORING_OP_READ, fd, data, len, off, &pi);
		ret = ret < 0 ? -ret : ret == (int)len ? 0 : EIO;
	}
	if (ret)
		goto out;
	if (o->which_bs) {
		print_which(f, o, data, md, off, len);
		goto out;
	}
	if (o->pi_out) {
		FILE *out = fopen(o->pi_out, "wb");

		if (!out || fwrite(md, 1, md_len, out) != md_len) {
			ret = 2;
			goto out;
		}
		fclose(out);
	}
	for (size_t i = 0; i < n && !o->no_pi; i++) {
		uint8_t *m = md + i * f->md_size;
		struct tuple t = { 0 };

		if (f->csum)
			decode(f, m, &t);
		if (o->dump) {
			printf("%" PRIu64 ": ", o->seed + i);
			if (f->csum)
				printf("guard=%0*" PRIx64 " app=%04x ref=%0*" PRIx64 " md=",
				       f->csum == LBMD_PI_CSUM_CRC64_NVME ? 16 : 4, t.guard, t.app,
				       f->csum == LBMD_PI_CSUM_CRC64_NVME ? 12 : 8, t.ref);
			for (unsigned int b = 0; b < f->md_size; b++)
				printf("%02x", m[b]);
			printf("\n");
		}
		if (o->expect_zero && f->csum && !is_escape(f, &t)) {
			fprintf(stderr, "interval %zu: PI is not escape\n", i);
			bad++;
		}
		if (o->verify && f->csum && !is_escape(f, &t)) {
			uint64_t g = guard_of(f, data + i * f->interval, m);

			if (t.guard != g || t.app != o->app_tag ||
			    (f->ref_tag && t.ref != ((o->seed + i) & ref_mask(f)))) {
				fprintf(stderr, "interval %zu: PI guard %" PRIx64 "/%" PRIx64
					" app %x/%x ref %" PRIx64 "/%" PRIx64 " (got/want)\n",
					i, t.guard, g, t.app, o->app_tag, t.ref,
					(o->seed + i) & ref_mask(f));
				bad++;
			}
		}
	}
	for (size_t i = 0; i < len && (o->verify || o->expect_zero); i++) {
		uint8_t want = o->expect_zero ? 0 : pattern_byte(o->pattern, off + i);

		if (data[i] != want) {
			fprintf(stderr, "data mismatch at byte %zu: %02x, want %02x\n",
				i, data[i], want);
			bad++;
			break;
		}
	}
	if (bad)
		ret = 3;
out:
	free(data);
	free(md);
	return ret;
}

/*
 * Recompute the checksum of an rdif backing store's header (CRC64-NVMe of
 * its first 64 bytes, stored little endian at byte 64), so that tests can
 * craft headers whose fields are wrong but whose checksum is right.
 */
static int do_header_crc(const char *path)
{
	uint8_t hdr[72];
	uint64_t crc;
	int fd, i;

	fd = open(path, O_RDWR);
	if (fd < 0 || pread(fd, hdr, 64, 0) != 64) {
		perror(path);
		return errno ? errno : EIO;
	}
	crc = crc64_nvme(0, hdr, 64);
	for (i = 0; i < 8; i++)
		hdr[64 + i] = crc >> (8 * i);
	if (pwrite(fd, hdr + 64, 8, 64) != 8) {
		perror(path);
		return errno ? errno : EIO;
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = { .pattern = 1 };
	struct fmt f;
	struct ring r;
	uint64_t off;
	size_t len;
	int fd, ret, i;
	bool wr, dsync = false;

	crc64_init();
	if (argc < 3)
		usage();
	if (!strcmp(argv[1], "phys")) {
		if (argc != 3)
			usage();
		return do_phys(argv[2]);
	}
	if (!strcmp(argv[1], "header-crc")) {
		if (argc != 3)
			usage();
		return do_header_crc(argv[2]);
	}
	fd = open(argv[2], O_RDWR | O_DIRECT);
	if (fd < 0) {
		perror(argv[2]);
		return errno;
	}
	if (!strcmp(argv[1], "cap")) {
		ret = get_fmt(fd, &f, true);
		if (ret)
			fprintf(stderr, "FS_IOC_GETLBMD_CAP: %s\n", strerror(-ret));
		return -ret;
	}
	wr = !strcmp(argv[1], "write");
	if ((!wr && strcmp(argv[1], "read")) || argc < 5)
		usage();
	off = num(argv[3]);
	len = num(argv[4]);
	for (i = 5; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--chk") && v)
			o.chk = parse_chk(v), i++;
		else if (!strcmp(a, "--app-tag") && v)
			o.app_tag = num(v), i++;
		else if (!strcmp(a, "--seed") && v)
			o.seed = num(v), o.seed_set = true, i++;
		else if (!strcmp(a, "--pattern") && v)
			o.pattern = num(v), i++;
		else if (!strcmp(a, "--corrupt") && v)
			o.corrupt = v, i++;
		else if (!strcmp(a, "--at") && v)
			o.at = num(v), i++;
		else if (!strcmp(a, "--pi-out") && v)
			o.pi_out = v, i++;
		else if (!strcmp(a, "--pi-in") && v)
			o.pi_in = v, i++;
		else if (!strcmp(a, "--data-in") && v)
			o.data_in = v, i++;
		else if (!strcmp(a, "--mutate") && v)
			o.mutate = num(v), i++;
		else if (!strcmp(a, "--no-pi"))
			o.no_pi = true;
		else if (!strcmp(a, "--verify"))
			o.verify = true;
		else if (!strcmp(a, "--expect-zero"))
			o.expect_zero = true;
		else if (!strcmp(a, "--dump"))
			o.dump = true;
		else if (!strcmp(a, "--dsync") && wr)
			dsync = true;
		else if (!strcmp(a, "--atomic") && wr)
			write_flags |= RWF_ATOMIC;
		else if (!strcmp(a, "--pieces") && v && wr)
			o.pieces = num(v), i++;
		else if (!strcmp(a, "--burst") && v && wr)
			o.burst = num(v), i++;
		else if (!strcmp(a, "--which") && i + 2 < argc && !wr) {
			char *list = argv[i + 2], *tok;

			o.which_bs = num(argv[i + 1]);
			while ((tok = strsep(&list, ",")) && o.nr_which < 16)
				o.which[o.nr_which++] = num(tok);
			i += 2;
		}
		else
			usage();
	}
	if (dsync) {
		close(fd);
		fd = open(argv[2], O_RDWR | O_DIRECT | O_DSYNC);
		if (fd < 0) {
			perror(argv[2]);
			return errno;
		}
	}
	ret = get_fmt(fd, &f, false);
	if (ret || !f.md_size) {
		if (!o.no_pi) {
			fprintf(stderr, "rdif_pi: %s has no integrity metadata\n", argv[2]);
			return ret ? -ret : EINVAL;
		}
		f.interval = 512;
	}
	if (!len || len % f.interval || off % f.interval) {
		fprintf(stderr, "rdif_pi: OFFSET and LEN must be multiples of %u\n", f.interval);
		return 2;
	}
	if (!o.seed_set)
		o.seed = off / f.interval;
	if (o.pieces && (o.pieces % f.interval || len % o.pieces || o.no_pi || o.mutate)) {
		fprintf(stderr, "rdif_pi: --pieces N: a multiple of the interval dividing LEN, with PI\n");
		return 2;
	}
	if (o.burst && (o.burst > MAX_BURST || o.no_pi || o.pieces || o.mutate || o.pi_in ||
			o.data_in || o.corrupt)) {
		fprintf(stderr, "rdif_pi: --burst K: 1 to 16 writes with generated PI\n");
		return 2;
	}
	if (o.which_bs && (o.which_bs % f.interval || len % o.which_bs || !f.md_size)) {
		fprintf(stderr, "rdif_pi: --which BS: a multiple of the interval dividing LEN\n");
		return 2;
	}
	if (!o.no_pi) {
		ret = ring_init(&r);
		if (ret) {
			fprintf(stderr, "rdif_pi: io_uring: %s\n", strerror(-ret));
			return -ret;
		}
	}
	ret = wr ? do_write(fd, &f, off, len, &o, &r) : do_read(fd, &f, off, len, &o, &r);
	if (ret && ret != 3)
		fprintf(stderr, "rdif_pi: %s: %s\n", argv[1], strerror(ret));
	return ret;
}
