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
#include <linux/magic.h>
#include <linux/module.h>
#include <linux/namei.h>
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
static_assert(BIP_BLOCK_INTEGRITY == 1 << 0);
static_assert(BIP_CHECK_GUARD == 1 << 5);
static_assert(BIP_CHECK_REFTAG == 1 << 6);
static_assert(BIP_CHECK_APPTAG == 1 << 7);
static_assert(BLK_INTEGRITY_DEVICE_CAPABLE == 1 << 2);
static_assert(BLK_INTEGRITY_REF_TAG == 1 << 3);
static_assert(BLK_SPLIT_INTERVAL_CAPABLE == 1 << 5);

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

/*
 * Hands a started request back to blk-mq to be dispatched again after a
 * short delay (a shortage outside queue_rq, which cannot return
 * BLK_STS_RESOURCE).
 */
void rdif_rq_requeue(struct request *rq)
{
	struct request_queue *q = rq->q;

	blk_mq_requeue_request(rq, false);
	blk_mq_delay_kick_requeue_list(q, 3);
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

/* For a block device node, the size is that of the bdev inode behind it. */
loff_t rdif_file_size(struct file *file)
{
	return i_size_read(file->f_mapping->host);
}

bool rdif_file_is_bdev(struct file *file)
{
	return S_ISBLK(file_inode(file)->i_mode);
}

bool rdif_file_is_reg(struct file *file)
{
	return S_ISREG(file_inode(file)->i_mode);
}

int rdif_file_punch(struct file *file, loff_t offset, loff_t len)
{
	return vfs_fallocate(file, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			     offset, len);
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
 * What identifies the file or device behind an open file while it is open
 * (the open file holds a reference to its inode).
 */
const void *rdif_file_inode(struct file *file)
{
	return file_inode(file);
}

/*
 * Whether a regular file lives on a pseudo file system (proc, sysfs,
 * configfs, debugfs, ...): no place for a store, and writing to configfs
 * from inside a configfs write recurses into its locks.
 */
static bool rdif_sb_is_pseudo(struct super_block *sb)
{
	switch (sb->s_magic) {
	case PROC_SUPER_MAGIC:
	case SYSFS_MAGIC:
	case CONFIGFS_MAGIC:
	case DEBUGFS_MAGIC:
	case TRACEFS_MAGIC:
	case SECURITYFS_MAGIC:
	case CGROUP_SUPER_MAGIC:
	case CGROUP2_SUPER_MAGIC:
	case BPF_FS_MAGIC:
	case PSTOREFS_MAGIC:
	case EFIVARFS_MAGIC:
	case BINFMTFS_MAGIC:
	case SELINUX_MAGIC:
	case SMACK_MAGIC:
	case NSFS_MAGIC:
		return true;
	default:
		return false;
	}
}

bool rdif_file_is_pseudo(struct file *file)
{
	return rdif_sb_is_pseudo(file_inode(file)->i_sb);
}

/*
 * Whether PATH names something other than a block device on a pseudo file
 * system, or would be created in a directory of one: 1 if so, 0 if not, a
 * negative errno if neither it nor its directory can be looked up. Asked
 * before opening, because opening a configfs file for writing from inside
 * a configfs write (power, format) already recurses into its locks.
 */
int rdif_path_is_pseudo(const char *name)
{
	struct path path;
	int err, ret;

	err = kern_path(name, LOOKUP_FOLLOW, &path);
	if (err == -ENOENT) {
		char *dir = kstrdup(name, GFP_KERNEL);
		char *slash;

		if (!dir)
			return -ENOMEM;
		slash = strrchr(dir, '/');
		if (slash)
			slash[slash == dir ? 1 : 0] = '\0';
		err = kern_path(dir, LOOKUP_FOLLOW, &path);
		kfree(dir);
	}
	if (err)
		return err;
	ret = rdif_sb_is_pseudo(path.dentry->d_sb) &&
	      !(d_inode(path.dentry) && S_ISBLK(d_inode(path.dentry)->i_mode));
	path_put(&path);
	return ret;
}

bool rdif_is_err(const void *ptr)
{
	return IS_ERR(ptr);
}

/*
 * Moves all of @iter at @pos of @file, synchronously. Returns the bytes
 * moved or a negative errno. A transfer that stops short is taken up again
 * where it stopped, so that running out of memory part-way (a page cache
 * allocation) comes back as -ENOMEM, a shortage to retry, and not as a
 * short count; what stops it for good (an I/O error after some bytes, the
 * end of a device) still returns the count so far.
 */
static ssize_t rdif_file_rw_iter(struct file *file, struct iov_iter *iter,
		loff_t pos, bool write)
{
	ssize_t done = 0, n;

	while (iov_iter_count(iter)) {
		n = write ? vfs_iter_write(file, iter, &pos, 0) :
			    vfs_iter_read(file, iter, &pos, 0);
		if (n == -ENOMEM || (n < 0 && !done))
			return n;
		if (n <= 0)
			break;
		done += n;
	}
	return done;
}

/*
 * Reads or writes the first @bytes of @bio's data at @pos of @file through
 * one iov_iter over the bio's own pages (as loop does), synchronously; see
 * rdif_file_rw_iter() for what it returns.
 */
ssize_t rdif_file_rw_bio(struct file *file, struct bio *bio, loff_t pos,
		unsigned int bytes, bool write)
{
	struct iov_iter iter;

	if (bytes > bio->bi_iter.bi_size)
		return -EINVAL;
	rdif_bio_iov_iter(bio, write ? ITER_SOURCE : ITER_DEST, &iter);
	iov_iter_truncate(&iter, bytes);
	return rdif_file_rw_iter(file, &iter, pos, write);
}

/*
 * Writes the @nr buffers of @vec, one after another, at @pos of @file with
 * one iov_iter; see rdif_file_rw_iter() for what it returns.
 */
ssize_t rdif_file_write_kvec(struct file *file, const struct kvec *vec,
		unsigned long nr, loff_t pos)
{
	struct iov_iter iter;
	size_t bytes = 0;
	unsigned long i;

	for (i = 0; i < nr; i++)
		bytes += vec[i].iov_len;
	iov_iter_kvec(&iter, ITER_SOURCE, vec, nr, bytes);
	return rdif_file_rw_iter(file, &iter, pos, true);
}

/*
 * A whole request's data moved between its pages and a backing file with
 * one direct-I/O kiocb over the request's bvecs, as loop's lo_rw_aio does.
 * The kiocb lives in the request's PDU. The file may complete it later,
 * from any context; either way it completes through the queue's ->complete
 * (blk_mq_complete_request), which reads the result with
 * rdif_rq_file_result().
 */
struct rdif_rq_file {
	/* The request went to a lower device (rdif_rq_lower_start()). */
	bool lower;
	/* Its first error, a blk_status_t (lower device only). */
	atomic_t status;
	/*
	 * The metadata a read without a payload of its own brought up, for
	 * the driver to check (lower device only; kmalloc'ed, or NULL).
	 */
	void *own_pi;
	size_t own_pi_len;
	struct kiocb iocb;
	/* The request's bvecs when it has several bios, else NULL. */
	struct bio_vec *bvec;
	long ret;
	/* Submission and completion each hold one. */
	atomic_t ref;
	/*
	 * Work items that serve the request in process context: its start
	 * (rdif_rq_defer()) and, once forwarded, its end (on @wq).
	 */
	struct work_struct start_work;
	struct work_struct done_work;
	struct workqueue_struct *wq;
	/* Forwarded: end it in the lower device's completion, not on @wq. */
	bool end_direct;
};

unsigned int rdif_rq_file_pdu_size(void)
{
	return sizeof(struct rdif_rq_file);
}

/*
 * Sets up the work items of @rq's PDU, once, when the tag set @set allocates
 * the request (->init_request): @start runs a request handed over with
 * rdif_rq_defer(), @done a forwarded request whose clones have all ended.
 * Nothing for a tag set without the PDU.
 */
void rdif_rq_init_work(struct blk_mq_tag_set *set, struct request *rq,
		       work_func_t start, work_func_t done)
{
	struct rdif_rq_file *cmd = blk_mq_rq_to_pdu(rq);

	if (set->cmd_size < sizeof(*cmd))
		return;
	INIT_WORK(&cmd->start_work, start);
	INIT_WORK(&cmd->done_work, done);
}

struct request *rdif_rq_from_start_work(struct work_struct *work)
{
	return blk_mq_rq_from_pdu(container_of(work, struct rdif_rq_file, start_work));
}

struct request *rdif_rq_from_done_work(struct work_struct *work)
{
	return blk_mq_rq_from_pdu(container_of(work, struct rdif_rq_file, done_work));
}

/*
 * Hands the started request @rq to its start work item on @wq. Returns
 * -EINVAL, having done nothing, if the tag set has no room for the work
 * item.
 */
int rdif_rq_defer(struct request *rq, struct workqueue_struct *wq)
{
	struct rdif_rq_file *cmd = blk_mq_rq_to_pdu(rq);

	if (rq->q->tag_set->cmd_size < sizeof(*cmd))
		return -EINVAL;
	queue_work(wq, &cmd->start_work);
	return 0;
}

static void rdif_rq_file_put(struct rdif_rq_file *cmd)
{
	struct request *rq = blk_mq_rq_from_pdu(cmd);

	if (!atomic_dec_and_test(&cmd->ref))
		return;
	kfree(cmd->bvec);
	cmd->bvec = NULL;
	if (req_op(rq) == REQ_OP_WRITE)
		kiocb_end_write(&cmd->iocb);
	blk_mq_complete_request(rq);
}

static void rdif_rq_file_complete(struct kiocb *iocb, long ret)
{
	struct rdif_rq_file *cmd = container_of(iocb, struct rdif_rq_file, iocb);

	cmd->ret = ret;
	rdif_rq_file_put(cmd);
}

/*
 * Starts the transfer of the whole of @rq (a read or write) at @pos of
 * @file. Returns 0 if started: the request then completes through
 * ->complete, perhaps before this returns. Returns -ENOMEM, having started
 * nothing, if the bvec array of a request of several bios cannot be
 * allocated, and -EINVAL if the request's tag set has less than
 * rdif_rq_file_pdu_size() of PDU.
 */
int rdif_rq_file_start(struct file *file, struct request *rq, loff_t pos,
		bool write)
{
	struct rdif_rq_file *cmd = blk_mq_rq_to_pdu(rq);
	unsigned int nr_bvec = blk_rq_nr_bvec(rq);
	int dir = write ? ITER_SOURCE : ITER_DEST;
	struct iov_iter iter;
	ssize_t ret;

	/* A tag set without room for the kiocb: refuse, touch nothing. */
	if (rq->q->tag_set->cmd_size < sizeof(*cmd))
		return -EINVAL;
	cmd->bvec = NULL;
	if (rq->bio != rq->biotail) {
		struct req_iterator rq_iter;
		struct bio_vec tmp, *bvec;

		bvec = kmalloc_array(nr_bvec, sizeof(*bvec), GFP_NOIO);
		if (!bvec)
			return -ENOMEM;
		cmd->bvec = bvec;
		/* Bios may start inside a bvec (split): copy what they use. */
		rq_for_each_bvec(tmp, rq, rq_iter)
			*bvec++ = tmp;
		iov_iter_bvec(&iter, dir, cmd->bvec, nr_bvec, blk_rq_bytes(rq));
		iter.iov_offset = 0;
	} else {
		iov_iter_bvec(&iter, dir,
			      __bvec_iter_bvec(rq->bio->bi_io_vec, rq->bio->bi_iter),
			      nr_bvec, blk_rq_bytes(rq));
		iter.iov_offset = rq->bio->bi_iter.bi_offset;
	}
	cmd->lower = false;
	atomic_set(&cmd->ref, 2);
	cmd->ret = 0;
	init_sync_kiocb(&cmd->iocb, file);
	cmd->iocb.ki_pos = pos;
	cmd->iocb.ki_ioprio = req_get_ioprio(rq);
	cmd->iocb.ki_complete = rdif_rq_file_complete;
	cmd->iocb.ki_flags = IOCB_DIRECT;
	if (write) {
		kiocb_start_write(&cmd->iocb);
		ret = file->f_op->write_iter(&cmd->iocb, &iter);
	} else {
		ret = file->f_op->read_iter(&cmd->iocb, &iter);
	}
	rdif_rq_file_put(cmd);
	if (ret != -EIOCBQUEUED)
		rdif_rq_file_complete(&cmd->iocb, ret);
	return 0;
}

/* The result of a request started with rdif_rq_file_start(). */
long rdif_rq_file_result(struct request *rq)
{
	struct rdif_rq_file *cmd = blk_mq_rq_to_pdu(rq);

	return cmd->ret;
}

/*
 * Whether @file takes direct I/O, and if so the smallest size and offset
 * granule (*min_size) and the memory alignment mask (*mem_align) it needs;
 * as loop_update_dio_alignment().
 */
bool rdif_file_dio_align(struct file *file, unsigned int *min_size,
		unsigned int *mem_align)
{
	struct block_device *sb_bdev = file->f_mapping->host->i_sb->s_bdev;
	struct kstat st;

	if (!(file->f_mode & FMODE_CAN_ODIRECT))
		return false;
	/*
	 * tmpfs takes O_DIRECT but ignores it (its data lives in the page
	 * cache): the I/O would be as synchronous as a buffered one, only
	 * dearer. Look through overlayfs to the file that holds the data.
	 */
	if (S_ISREG(file_inode(file)->i_mode) &&
	    shmem_mapping(d_real_inode(file->f_path.dentry)->i_mapping))
		return false;
	if (!vfs_getattr(&file->f_path, &st, STATX_DIOALIGN, 0) &&
	    (st.result_mask & STATX_DIOALIGN) && st.dio_mem_align) {
		*min_size = st.dio_offset_align;
		*mem_align = min_t(unsigned int, st.dio_mem_align - 1, PAGE_SIZE - 1);
	} else if (S_ISBLK(file_inode(file)->i_mode)) {
		*min_size = bdev_logical_block_size(I_BDEV(file->f_mapping->host));
		*mem_align = bdev_dma_alignment(I_BDEV(file->f_mapping->host));
	} else if (sb_bdev) {
		*min_size = bdev_logical_block_size(sb_bdev);
		*mem_align = bdev_dma_alignment(sb_bdev);
	} else {
		*min_size = SECTOR_SIZE;
		*mem_align = SECTOR_SIZE - 1;
	}
	return *min_size != 0;
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

/*
 * Pass-through to a lower block device.
 *
 * A request is forwarded as clones of its bios (bio_alloc_clone(), which
 * also clones the integrity payload: the lower device gets the same data
 * pages and the same PI buffer). The request's PDU counts the clones in
 * flight; the last one to end completes the request through the queue's
 * ->complete with the first error any of them met.
 */

struct rdif_lower {
	struct file *file;
	struct block_device *bdev;
	struct bio_set bs;
	/* Serializes clone allocations that may wait for the bio set. */
	struct mutex alloc_lock;
};

static void rdif_lower_mark_dead(struct block_device *bdev, bool surprise)
	__releases(&bdev->bd_holder_lock)
{
	mutex_unlock(&bdev->bd_holder_lock);
	pr_warn("rdif: lower device %pg is gone: its I/O fails until power 0\n",
		bdev);
}

static const struct blk_holder_ops rdif_lower_holder_ops = {
	.mark_dead = rdif_lower_mark_dead,
};

/*
 * Opens the block device at @path for reading and writing, exclusively
 * (rdif is its holder). Returns NULL with *@err set on failure: -ENOTBLK
 * if @path is not a block device, else what opening it returned.
 */
struct rdif_lower *rdif_lower_open(const char *path, int *err)
{
	struct rdif_lower *l = kzalloc(sizeof(*l), GFP_KERNEL);
	struct file *f;
	int ret;

	if (!l) {
		*err = -ENOMEM;
		return NULL;
	}
	mutex_init(&l->alloc_lock);
	ret = bioset_init(&l->bs, BIO_POOL_SIZE, 0, BIOSET_NEED_BVECS);
	if (ret)
		goto free;
	f = bdev_file_open_by_path(path, BLK_OPEN_READ | BLK_OPEN_WRITE, l,
				   &rdif_lower_holder_ops);
	if (IS_ERR(f)) {
		ret = PTR_ERR(f);
		goto exit;
	}
	l->file = f;
	l->bdev = file_bdev(f);
	return l;
exit:
	bioset_exit(&l->bs);
free:
	kfree(l);
	*err = ret;
	return NULL;
}

void rdif_lower_close(struct rdif_lower *l)
{
	bdev_fput(l->file);
	bioset_exit(&l->bs);
	kfree(l);
}

/* The lower device's size in 512-byte sectors. */
u64 rdif_lower_sectors(struct rdif_lower *l)
{
	return bdev_nr_sectors(l->bdev);
}

/* The lower device's logical block size. */
unsigned int rdif_lower_block_size(struct rdif_lower *l)
{
	return bdev_logical_block_size(l->bdev);
}

/* The lower device's integrity profile (all zero if it has none). */
void rdif_lower_integrity(struct rdif_lower *l, struct blk_integrity *bi)
{
	*bi = bdev_limits(l->bdev)->integrity;
}

/*
 * Replaces @lim with stacking limits (blk_set_stacking_limits()) of
 * @lim's block size and features, with the lower device's limits and
 * integrity profile stacked in, as stacking drivers do. Returns -EINVAL,
 * leaving @lim as it was, if the profiles cannot be stacked.
 */
int rdif_lower_stack_limits(struct rdif_lower *l, struct queue_limits *lim)
{
	struct queue_limits t;

	blk_set_stacking_limits(&t);
	t.logical_block_size = lim->logical_block_size;
	t.physical_block_size = lim->physical_block_size;
	t.features = lim->features;
	queue_limits_stack_bdev(&t, l->bdev, 0, "rdif");
	if (!queue_limits_stack_integrity_bdev(&t, l->bdev))
		return -EINVAL;
	*lim = t;
	return 0;
}

/*
 * The last clone to end hands the request to its done work item: the
 * driver ends it there, in process context, outside the lower device's
 * completion (which may hold the lower queue's flush lock, or run in
 * interrupt context). A request that asked for it and is no part of a
 * flush sequence is ended right here instead, by the same function.
 */
static void rdif_rq_lower_put(struct rdif_rq_file *cmd)
{
	if (!atomic_dec_and_test(&cmd->ref))
		return;
	if (cmd->end_direct)
		cmd->done_work.func(&cmd->done_work);
	else
		queue_work(cmd->wq, &cmd->done_work);
}

static void rdif_lower_endio(struct bio *clone)
{
	struct rdif_rq_file *cmd = clone->bi_private;

	if (clone->bi_status)
		atomic_cmpxchg(&cmd->status, BLK_STS_OK, clone->bi_status);
	bio_put(clone);
	rdif_rq_lower_put(cmd);
}

/* A bounce clone owns its data pages and its integrity buffer. */
static void rdif_lower_bounce_free(struct bio *bio)
{
	struct bio_integrity_payload *bip = bio_integrity(bio);
	struct bvec_iter_all iter;
	struct bio_vec *bv;

	if (bip && bip->bip_vcnt)
		kfree(bvec_virt(&bip->bip_vec[0]));
	bio_for_each_segment_all(bv, bio, iter)
		__free_page(bv->bv_page);
}

static void rdif_lower_bounce_endio(struct bio *clone)
{
	rdif_lower_bounce_free(clone);
	rdif_lower_endio(clone);
}

/*
 * A copy of @src (data and integrity payload) in memory of its own, to be
 * changed on its way down without touching the submitter's buffers.
 */
static struct bio *rdif_lower_bounce(struct rdif_lower *l, struct bio *src,
				     gfp_t gfp)
{
	struct bio_integrity_payload *sbip = bio_integrity(src), *bip;
	unsigned int size = src->bi_iter.bi_size;
	unsigned int order = 0, seg, nr, i;
	struct bio *bio;

	/*
	 * A bio of multi-page bvecs may hold more than BIO_MAX_VECS pages:
	 * the copy then takes pieces of several pages each.
	 */
	while (DIV_ROUND_UP(size, PAGE_SIZE << order) > BIO_MAX_VECS)
		order++;
	seg = PAGE_SIZE << order;
	nr = DIV_ROUND_UP(size, seg);
	bio = bio_alloc_bioset(l->bdev, nr, src->bi_opf, gfp, &l->bs);
	if (!bio)
		return NULL;
	bio->bi_iter.bi_sector = src->bi_iter.bi_sector;
	bio->bi_ioprio = src->bi_ioprio;
	for (i = 0; i < nr; i++) {
		unsigned int len = min(size - i * seg, seg);
		struct page *page = alloc_pages(gfp, get_order(len));

		if (!page)
			goto fail;
		__bio_add_page(bio, page, len, 0);
	}
	bio_copy_data(bio, src);
	if (sbip) {
		struct bvec_iter it;
		struct bio_vec bv;
		unsigned int off = 0, len = sbip->bip_iter.bi_size;
		void *buf;

		bip = bio_integrity_alloc(bio, gfp, 1);
		if (IS_ERR(bip))
			goto fail;
		buf = kmalloc(len, gfp);
		if (!buf)
			goto fail;
		bip_for_each_vec(bv, sbip, it) {
			memcpy_from_bvec(buf + off, &bv);
			off += bv.bv_len;
		}
		bvec_set_virt(&bip->bip_vec[0], buf, len);
		bip->bip_vcnt = 1;
		bip->bip_iter.bi_size = len;
		bip->bip_iter.bi_sector = sbip->bip_iter.bi_sector;
		bip->bip_flags = sbip->bip_flags & BIP_CLONE_FLAGS;
		bip->app_tag = sbip->app_tag;
	}
	return bio;
fail:
	rdif_lower_bounce_free(bio);
	bio_put(bio);
	return NULL;
}

static void rdif_lower_free_list(struct bio_list *list)
{
	struct bio *clone;

	while ((clone = bio_list_pop(list))) {
		if (clone->bi_end_io == rdif_lower_bounce_endio)
			rdif_lower_bounce_free(clone);
		bio_put(clone);
	}
}

/*
 * Clones every bio of @rq into @list (see rdif_rq_lower_start()), with
 * @own for the metadata of the device's own. Returns 0, or -ENOMEM with
 * @list empty.
 */
static int rdif_lower_clone_all(struct rdif_lower *l, struct request *rq,
				struct bio_list *list, bool bounce, s64 shift,
				void *own, unsigned int own_md,
				unsigned int interval_exp, gfp_t gfp)
{
	size_t own_off = 0;
	struct bio *src, *clone;

	if (!rq->bio) {
		/* A flush (or an empty request): a flush of the lower device. */
		clone = bio_alloc_bioset(l->bdev, 0, REQ_OP_WRITE | REQ_PREFLUSH,
					 gfp, &l->bs);
		if (!clone)
			return -ENOMEM;
		bio_list_add(list, clone);
	}
	__rq_for_each_bio(src, rq) {
		bool copy = bounce && op_is_write(bio_op(src)) &&
			    bio_has_data(src);

		if (copy)
			clone = rdif_lower_bounce(l, src, gfp);
		else
			clone = bio_alloc_clone(l->bdev, src, gfp, &l->bs);
		if (clone && own && !bio_integrity(src)) {
			/*
			 * Metadata of the device's own, seeded with the
			 * interval number, so that the lower device's
			 * completion leaves the reference tags as they are.
			 */
			size_t len = (size_t)(src->bi_iter.bi_size >>
					      interval_exp) * own_md;
			struct bio_integrity_payload *bip =
				bio_integrity_alloc(clone, gfp, 1);

			if (IS_ERR(bip)) {
				bio_put(clone);
				clone = NULL;
			} else {
				bvec_set_virt(&bip->bip_vec[0], own + own_off, len);
				bip->bip_vcnt = 1;
				bip->bip_iter.bi_size = len;
				bip_set_seed(bip, src->bi_iter.bi_sector >>
						  (interval_exp - SECTOR_SHIFT));
				own_off += len;
			}
		}
		if (!clone) {
			rdif_lower_free_list(list);
			return -ENOMEM;
		}
		clone->bi_iter.bi_sector += shift;
		clone->bi_end_io = copy ? rdif_lower_bounce_endio : NULL;
		bio_list_add(list, clone);
	}
	return 0;
}

/*
 * Forwards the started request @rq to the lower device: a clone of each
 * of its bios (a copy of its own for each bio that writes data if
 * @bounce; for a read, with @own_md bytes of metadata per 1 << @interval_exp
 * bytes of data in a buffer of the driver's own for each bio that has no
 * integrity payload, if @own_md), shifted by @shift sectors, each copy
 * handed to @fix(@ctx, copy, src) before anything is submitted; a flush becomes an
 * empty flush of the lower device. Must be called in process context,
 * outside any dispatch of the driver's own queue (a work item): submitting
 * to the lower queue may sleep. Returns 0 if started: the request's done
 * work item then runs on @wq once every clone has ended, perhaps before
 * this returns; with @end_direct, its function runs instead in the
 * completion of the last clone, in whatever context the lower device
 * completes (interrupts included), unless the request is a flush or part
 * of a flush sequence (REQ_PREFLUSH, REQ_FUA, RQF_FLUSH_SEQ): ending one
 * of those would take this queue's flush lock inside the lower one's. Returns -ENOMEM, having submitted nothing, if memory for
 * the clones cannot be had, -EINVAL if the tag set has less than
 * rdif_rq_file_pdu_size() of PDU.
 *
 * The clones come from the lower device's bio set. As device mapper does
 * (alloc_multiple_bios()), they are first allocated without waiting; if
 * that fails, again with GFP_NOIO, one request at a time, so that no two
 * requests each hold part of the bio set's reserve while waiting for the
 * rest: the reserve then guarantees progress.
 */
int rdif_rq_lower_start(struct rdif_lower *l, struct request *rq,
			struct workqueue_struct *wq, bool end_direct,
			bool bounce, s64 shift, unsigned int own_md,
			unsigned int interval_exp,
			void (*fix)(void *ctx, struct bio *clone, struct bio *src),
			void *ctx)
{
	struct rdif_rq_file *cmd = blk_mq_rq_to_pdu(rq);
	struct bio_list list = BIO_EMPTY_LIST;
	unsigned int n = 0;
	size_t own_len = 0;
	void *own = NULL;
	struct bio *src, *clone;
	int ret;

	if (rq->q->tag_set->cmd_size < sizeof(*cmd))
		return -EINVAL;
	if (own_md && req_op(rq) == REQ_OP_READ) {
		__rq_for_each_bio(src, rq)
			if (!bio_integrity(src))
				own_len += (size_t)(src->bi_iter.bi_size >>
						    interval_exp) * own_md;
		if (own_len) {
			own = kmalloc(own_len, GFP_NOIO | __GFP_NOWARN);
			if (!own)
				return -ENOMEM;
		}
	}
	ret = rdif_lower_clone_all(l, rq, &list, bounce, shift, own, own_md,
				   interval_exp, GFP_NOWAIT | __GFP_NOWARN);
	if (ret) {
		mutex_lock(&l->alloc_lock);
		ret = rdif_lower_clone_all(l, rq, &list, bounce, shift, own,
					   own_md, interval_exp,
					   GFP_NOIO | __GFP_NOWARN);
		mutex_unlock(&l->alloc_lock);
	}
	if (ret) {
		kfree(own);
		return ret;
	}
	cmd->lower = true;
	cmd->own_pi = own;
	cmd->own_pi_len = own_len;
	cmd->wq = wq;
	cmd->end_direct = end_direct && req_op(rq) != REQ_OP_FLUSH &&
			  !(rq->rq_flags & RQF_FLUSH_SEQ) &&
			  !(rq->cmd_flags & (REQ_PREFLUSH | REQ_FUA));
	atomic_set(&cmd->status, BLK_STS_OK);
	/*
	 * Clones are in the order of their bios (a flush has no bio). @fix
	 * sees the copies, whose pages and payload are the driver's own.
	 */
	src = rq->bio;
	for (clone = list.head; clone; clone = clone->bi_next, n++) {
		if (fix && src && clone->bi_end_io == rdif_lower_bounce_endio)
			fix(ctx, clone, src);
		src = src ? src->bi_next : NULL;
	}
	atomic_set(&cmd->ref, n + 1);
	while ((clone = bio_list_pop(&list))) {
		if (!clone->bi_end_io)
			clone->bi_end_io = rdif_lower_endio;
		clone->bi_private = cmd;
		submit_bio_noacct(clone);
	}
	rdif_rq_lower_put(cmd);
	return 0;
}

/*
 * Takes the metadata of the device's own that a forwarded read brought up
 * (see rdif_rq_lower_start()): the caller kfree()s it. NULL if none.
 */
void *rdif_rq_lower_take_pi(struct request *rq, size_t *len)
{
	struct rdif_rq_file *cmd = blk_mq_rq_to_pdu(rq);
	void *p;

	if (rq->q->tag_set->cmd_size < sizeof(*cmd) || !cmd->lower)
		return NULL;
	p = cmd->own_pi;
	*len = cmd->own_pi_len;
	cmd->own_pi = NULL;
	return p;
}

/* Whether @rq was forwarded to a lower device; if so, its status. */
bool rdif_rq_lower_status(struct request *rq, u8 *status)
{
	struct rdif_rq_file *cmd = blk_mq_rq_to_pdu(rq);

	if (rq->q->tag_set->cmd_size < sizeof(*cmd) || !cmd->lower)
		return false;
	*status = atomic_read(&cmd->status);
	return true;
}
