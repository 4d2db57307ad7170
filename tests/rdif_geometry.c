// SPDX-License-Identifier: GPL-2.0
/*
 * rdif device geometry as seen through the block ioctls and sysfs.
 *
 * Each test loads rdif itself (finit_module on $RDIF_KO) with its variant's
 * parameters and unloads it afterwards, so rdif must not be in use when this
 * runs. Needs root.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "rdif_test.h"

FIXTURE(geom) {
	int unused;
};

FIXTURE_VARIANT(geom) {
	const char *params;
	int nr;
	unsigned long long bytes;
	unsigned int lbs;
};

FIXTURE_VARIANT_ADD(geom, defaults) {
	.params = "", .nr = 1, .bytes = 256 * RDIF_MIB, .lbs = 512,
};

FIXTURE_VARIANT_ADD(geom, size64_bs4096) {
	.params = "size=64 blocksize=4096", .nr = 1, .bytes = 64 * RDIF_MIB, .lbs = 4096,
};

FIXTURE_VARIANT_ADD(geom, size64_bs512) {
	.params = "size=64 blocksize=512", .nr = 1, .bytes = 64 * RDIF_MIB, .lbs = 512,
};

FIXTURE_VARIANT_ADD(geom, size1_bs4096) {
	.params = "size=1 blocksize=4096", .nr = 1, .bytes = 1 * RDIF_MIB, .lbs = 4096,
};

FIXTURE_VARIANT_ADD(geom, three_devices) {
	.params = "nr_devices=3 size=8 blocksize=4096", .nr = 3, .bytes = 8 * RDIF_MIB,
	.lbs = 4096,
};

FIXTURE_SETUP(geom)
{
	int err;

	if (geteuid() != 0)
		SKIP(return, "must run as root");
	err = rdif_load(variant->params, variant->nr);
	ASSERT_EQ(0, err) {
		TH_LOG("loading %s with \"%s\": %s", rdif_ko_path(), variant->params,
		       strerror(-err));
	}
}

FIXTURE_TEARDOWN_PARENT(geom)
{
	int err = rdif_unload();

	EXPECT_EQ(0, err) TH_LOG("unloading rdif: %s", strerror(-err));
}

static int open_dev(int i, int flags)
{
	char dev[32];

	snprintf(dev, sizeof(dev), "/dev/rdif%d", i);
	return open(dev, flags | O_CLOEXEC);
}

TEST_F(geom, capacity)
{
	for (int i = 0; i < variant->nr; i++) {
		unsigned long long bytes = 0;
		unsigned long sectors = 0;
		char disk[16];
		int fd = open_dev(i, O_RDONLY);

		ASSERT_LE(0, fd) TH_LOG("open rdif%d: %s", i, strerror(errno));
		snprintf(disk, sizeof(disk), "rdif%d", i);
		ASSERT_EQ(0, ioctl(fd, BLKGETSIZE64, &bytes));
		EXPECT_EQ(variant->bytes, bytes) TH_LOG("rdif%d BLKGETSIZE64", i);
		ASSERT_EQ(0, ioctl(fd, BLKGETSIZE, &sectors));
		EXPECT_EQ(variant->bytes / 512, sectors) TH_LOG("rdif%d BLKGETSIZE", i);
		EXPECT_EQ((long long)(variant->bytes / 512), rdif_sysfs_num(disk, "size"));
		EXPECT_EQ((off_t)variant->bytes, lseek(fd, 0, SEEK_END));
		close(fd);
	}
	{
		char disk[16];

		snprintf(disk, sizeof(disk), "rdif%d", variant->nr);
		EXPECT_EQ(-1, rdif_sysfs_num(disk, "size")) TH_LOG("unexpected %s", disk);
	}
}

TEST_F(geom, logical_block_size)
{
	for (int i = 0; i < variant->nr; i++) {
		char disk[16];
		int ssz = 0, fd = open_dev(i, O_RDONLY);

		ASSERT_LE(0, fd);
		snprintf(disk, sizeof(disk), "rdif%d", i);
		ASSERT_EQ(0, ioctl(fd, BLKSSZGET, &ssz));
		EXPECT_EQ(variant->lbs, (unsigned int)ssz);
		EXPECT_EQ(variant->lbs, rdif_sysfs_num(disk, "queue/logical_block_size"));
		EXPECT_EQ(variant->lbs, rdif_sysfs_num(disk, "queue/hw_sector_size"));
		close(fd);
	}
}

TEST_F(geom, physical_block_size)
{
	unsigned int pbs = 0, iomin = 0;
	int fd = open_dev(0, O_RDONLY);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, BLKPBSZGET, &pbs));
	TH_LOG("physical block size %u", pbs);
	EXPECT_LE(variant->lbs, pbs);
	EXPECT_EQ(0, pbs & (pbs - 1)) TH_LOG("%u is not a power of two", pbs);
	EXPECT_GE(65536, pbs);
	EXPECT_EQ((long long)pbs, rdif_sysfs_num("rdif0", "queue/physical_block_size"));
	ASSERT_EQ(0, ioctl(fd, BLKIOMIN, &iomin));
	EXPECT_EQ(0, iomin % variant->lbs) TH_LOG("io_min %u", iomin);
	close(fd);
}

/* A writable, non-rotational, non-removable memory disk. */
TEST_F(geom, attributes)
{
	int ro = -1, fd = open_dev(0, O_RDONLY);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, BLKROGET, &ro));
	EXPECT_EQ(0, ro);
	EXPECT_EQ(0, rdif_sysfs_num("rdif0", "ro"));
	EXPECT_EQ(0, rdif_sysfs_num("rdif0", "removable"));
	EXPECT_EQ(0, rdif_sysfs_num("rdif0", "queue/rotational"));
	close(fd);
	fd = open_dev(0, O_RDWR);
	EXPECT_LE(0, fd) TH_LOG("open O_RDWR: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* The block layer enforces the logical block size on O_DIRECT I/O. */
TEST_F(geom, direct_io_alignment)
{
	unsigned int lbs = variant->lbs;
	char *buf;
	int fd = open_dev(0, O_RDONLY | O_DIRECT);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, posix_memalign((void **)&buf, 4096, 2 * 4096));
	EXPECT_EQ((ssize_t)lbs, pread(fd, buf, lbs, lbs));
	EXPECT_EQ((ssize_t)lbs, pread(fd, buf, lbs, variant->bytes - lbs));
	if (lbs > 512) {
		errno = 0;
		EXPECT_EQ(-1, pread(fd, buf, 512, 0));
		EXPECT_EQ(EINVAL, errno);
		errno = 0;
		EXPECT_EQ(-1, pread(fd, buf, lbs, 512));
		EXPECT_EQ(EINVAL, errno);
	}
	free(buf);
	close(fd);
}

TEST_HARNESS_MAIN
