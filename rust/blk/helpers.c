// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers for rdif's block-layer abstractions (rust/blk/).
 *
 * bindgen cannot see static inline functions and macros, and the kernel's
 * bindings do not include <linux/bio-integrity.h>. The small functions here
 * expose exactly what the Rust wrappers need. Constants that Rust mirrors by
 * value are checked at compile time below, so a change of value in a future
 * kernel breaks the build instead of the I/O path.
 */

#include <linux/bio.h>
#include <linux/bio-integrity.h>
#include <linux/blk-integrity.h>
#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/sched/mm.h>
#include <linux/shmem_fs.h>
#include <linux/uio.h>
#include <linux/workqueue.h>

#include "helpers.h"

static_assert(BLK_STS_OK == 0);
static_assert(REQ_OP_MASK == (1u << 8) - 1);
static_assert(BLK_STS_NOTSUPP == 1);
static_assert(BLK_STS_PROTECTION == 8);
static_assert(BLK_STS_RESOURCE == 9);
static_assert(BLK_STS_IOERR == 10);
static_assert(BLK_FEAT_WRITE_CACHE == 1u << 0);
static_assert(BLK_FEAT_FUA == 1u << 1);
static_assert(BLK_FEAT_ATOMIC_WRITES == 1u << 14);
static_assert(BIP_BLOCK_INTEGRITY == 1 << 0);
static_assert(BIP_CHECK_GUARD == 1 << 5);
static_assert(BIP_CHECK_REFTAG == 1 << 6);
static_assert(BIP_CHECK_APPTAG == 1 << 7);
static_assert(BLK_INTEGRITY_DEVICE_CAPABLE == 1 << 2);
static_assert(BLK_INTEGRITY_REF_TAG == 1 << 3);
static_assert(BLK_SPLIT_INTERVAL_CAPABLE == 1 << 5);
static_assert(BLK_OPEN_READ == 1 << 0);
static_assert(BLK_OPEN_WRITE == 1 << 1);
static_assert(GFP_NOIO == 0xc00);
static_assert(FALLOC_FL_KEEP_SIZE == 0x01);
static_assert(FALLOC_FL_PUNCH_HOLE == 0x02);
static_assert(FMODE_CAN_ODIRECT == (__force fmode_t)(1 << 22));

/*
 * The operations of every disk of this module: none but the owner, which
 * keeps the module loaded while a disk is open. Static, because an open
 * disk outlives its removal (del_gendisk) and still reaches its fops when
 * the last opener closes it.
 */
const struct block_device_operations rdif_bdev_fops = {
	.owner = THIS_MODULE,
};

/* Data of a bio. */

/*
 * Sets up @iter as an ITER_BVEC iov_iter in direction @dir (ITER_SOURCE or
 * ITER_DEST) over the data of @bio from its current position, as loop does
 * for a request's bio. The segment count is that of the table entries the
 * data spans (what bio_for_each_bvec would count), found from their
 * lengths alone: a clone's table (a split bio's, or io_uring's registered
 * buffer) is not its own, and may go on beyond its data.
 */
void rdif_bio_iov_iter(struct bio *bio, unsigned int dir, struct iov_iter *iter)
{
	const struct bio_vec *bv = __bvec_iter_bvec(bio->bi_io_vec, bio->bi_iter);
	unsigned int left = bio->bi_iter.bi_offset + bio->bi_iter.bi_size;
	unsigned long nr = 0;

	while (left) {
		left -= min(left, bv[nr].bv_len);
		nr++;
	}
	iov_iter_bvec(iter, dir, bv, nr, bio->bi_iter.bi_size);
	iter->iov_offset = bio->bi_iter.bi_offset;
}

/* Integrity payload of a bio. */

struct bio_integrity_payload *rdif_bio_integrity(struct bio *bio)
{
	return bio_integrity(bio);
}

unsigned short rdif_bip_flags(const struct bio_integrity_payload *bip)
{
	return bip->bip_flags;
}

u16 rdif_bip_app_tag(const struct bio_integrity_payload *bip)
{
	return bip->app_tag;
}

void rdif_bip_iter(const struct bio_integrity_payload *bip,
		   struct bvec_iter *iter)
{
	*iter = bip->bip_iter;
}

bool rdif_bip_next_segment(struct bio_integrity_payload *bip,
			   struct bvec_iter *iter, struct page **page,
			   unsigned int *offset, unsigned int *len)
{
	struct bio_vec bv;

	if (!iter->bi_size)
		return false;
	bv = bvec_iter_bvec(bip->bip_vec, *iter);
	*page = bv.bv_page;
	*offset = bv.bv_offset;
	*len = bv.bv_len;
	bvec_iter_advance_single(bip->bip_vec, iter, bv.bv_len);
	return true;
}

/* Page mapping. */

void rdif_memcpy_from_page(void *to, struct page *page, size_t off, size_t len)
{
	memcpy_from_page(to, page, off, len);
}

void rdif_memcpy_to_page(struct page *page, size_t off, const void *from, size_t len)
{
	memcpy_to_page(page, off, from, len);
}

/* Backing files. */

/*
 * Whether @file keeps its data in shmem (tmpfs), looking through overlayfs
 * to the file that holds it: such a file takes O_DIRECT but ignores it.
 */
bool rdif_file_in_shmem(struct file *file)
{
	return shmem_mapping(d_real_inode(file->f_path.dentry)->i_mapping);
}

/*
 * Whether the page of the file at @pos is in the page cache and up to date,
 * so that a buffered access to part of it reads nothing from the medium
 * (as long as it stays cached).
 */
bool rdif_file_page_uptodate(struct file *file, loff_t pos)
{
	struct folio *folio;
	bool uptodate;

	folio = filemap_get_folio(file->f_mapping, pos >> PAGE_SHIFT);
	if (IS_ERR(folio))
		return false;
	uptodate = folio_test_uptodate(folio);
	folio_put(folio);
	return uptodate;
}

/*
 * Fills @bvec (room for @max) with the segments of all of @rq's data, the
 * parts of them its bios use (a split bio may start inside one), as loop
 * does for a request of several bios. Returns their number; with no
 * @bvec, only counts them.
 */
unsigned int rdif_rq_bvecs(struct request *rq, struct bio_vec *bvec,
			   unsigned int max)
{
	struct req_iterator iter;
	struct bio_vec bv;
	unsigned int n = 0;

	rq_for_each_bvec(bv, rq, iter) {
		if (bvec && n < max)
			bvec[n] = bv;
		n++;
	}
	return bvec ? min(n, max) : n;
}

void rdif_kiocb_start_write(struct kiocb *iocb)
{
	kiocb_start_write(iocb);
}

void rdif_kiocb_end_write(struct kiocb *iocb)
{
	kiocb_end_write(iocb);
}

/*
 * The current task serves I/O for a device through a backing file, as
 * loop's worker does: reclaim must not wait for I/O (that may be I/O to
 * this very device), and dirty throttling must only look at the backing
 * file's own device, not at the dirty pages that only this task can clean.
 * Returns the flags to restore.
 */
unsigned int rdif_backing_io_save(void)
{
	unsigned int old = current->flags & (PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE);

	current->flags |= PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE;
	return old;
}

void rdif_backing_io_restore(unsigned int old)
{
	current->flags = (current->flags & ~(PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE)) | old;
}

void rdif_cond_resched(void)
{
	cond_resched();
}

/* Workqueues of the driver's own. */

struct workqueue_struct *rdif_alloc_workqueue(const char *name)
{
	return alloc_workqueue("%s", WQ_MEM_RECLAIM | WQ_UNBOUND, 0, name);
}

void rdif_flush_workqueue(struct workqueue_struct *wq)
{
	flush_workqueue(wq);
}

/* Stacking over a lower block device. */

/*
 * Replaces @lim with stacking limits (blk_set_stacking_limits()) of
 * @lim's block size and features, with @bdev's limits and integrity
 * profile stacked in, as stacking drivers do. Returns -EINVAL, leaving
 * @lim as it was, if the profiles cannot be stacked.
 */
int rdif_lower_stack_limits(struct block_device *bdev, struct queue_limits *lim)
{
	struct queue_limits t;

	blk_set_stacking_limits(&t);
	t.logical_block_size = lim->logical_block_size;
	t.physical_block_size = lim->physical_block_size;
	t.features = lim->features;
	queue_limits_stack_bdev(&t, bdev, 0, "rdif");
	if (!queue_limits_stack_integrity_bdev(&t, bdev))
		return -EINVAL;
	*lim = t;
	return 0;
}

/*
 * Gives the clone @bio an integrity payload of one buffer, @len bytes at
 * @buf (kmalloc'ed, which the caller frees after the bio has ended),
 * with @seed, the clone flags of @flags, and @app_tag.
 */
int rdif_bio_integrity_attach(struct bio *bio, void *buf, unsigned int len,
			      u64 seed, unsigned short flags, u16 app_tag,
			      gfp_t gfp)
{
	struct bio_integrity_payload *bip = bio_integrity_alloc(bio, gfp, 1);

	if (IS_ERR(bip))
		return PTR_ERR(bip);
	bvec_set_virt(&bip->bip_vec[0], buf, len);
	bip->bip_vcnt = 1;
	bip->bip_iter.bi_size = len;
	bip_set_seed(bip, seed);
	bip->bip_flags = flags & BIP_CLONE_FLAGS;
	bip->app_tag = app_tag;
	return 0;
}
