/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Prototypes of the C helpers behind rdif's block-layer abstractions
 * (helpers.c); the Rust side declares the same functions in extern blocks.
 */
#ifndef RDIF_BLK_HELPERS_H
#define RDIF_BLK_HELPERS_H

#include <linux/blk_types.h>
#include <linux/types.h>

struct bio_integrity_payload;
struct file;
struct iov_iter;
struct kvec;
struct page;
struct request;
struct workqueue_struct;
struct block_device_operations;

extern const struct block_device_operations rdif_bdev_fops;

void rdif_bio_iov_iter(struct bio *bio, unsigned int dir, struct iov_iter *iter);
struct bio_integrity_payload *rdif_bio_integrity(struct bio *bio);
unsigned short rdif_bip_flags(const struct bio_integrity_payload *bip);
u16 rdif_bip_app_tag(const struct bio_integrity_payload *bip);
void rdif_bip_iter(const struct bio_integrity_payload *bip,
		struct bvec_iter *iter);
bool rdif_bip_next_segment(struct bio_integrity_payload *bip,
		struct bvec_iter *iter, struct page **page, unsigned int *offset,
		unsigned int *len);
void rdif_memcpy_from_page(void *to, struct page *page, size_t off, size_t len);
void rdif_memcpy_to_page(struct page *page, size_t off, const void *from, size_t len);
bool rdif_file_page_uptodate(struct file *file, loff_t pos);
bool rdif_file_in_shmem(struct file *file);
unsigned int rdif_backing_io_save(void);
void rdif_backing_io_restore(unsigned int old);
void rdif_cond_resched(void);
struct workqueue_struct *rdif_alloc_workqueue(const char *name);
void rdif_flush_workqueue(struct workqueue_struct *wq);

struct bio_vec;
struct kiocb;
unsigned int rdif_rq_bvecs(struct request *rq, struct bio_vec *bvec,
		unsigned int max);
void rdif_kiocb_start_write(struct kiocb *iocb);
void rdif_kiocb_end_write(struct kiocb *iocb);

struct block_device;
struct queue_limits;
int rdif_lower_stack_limits(struct block_device *bdev, struct queue_limits *lim);
int rdif_bio_integrity_attach(struct bio *bio, void *buf, unsigned int len,
		u64 seed, unsigned short flags, u16 app_tag, gfp_t gfp);

#endif /* RDIF_BLK_HELPERS_H */
