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
loff_t rdif_file_size(struct file *file);
bool rdif_file_is_bdev(struct file *file);
bool rdif_file_is_reg(struct file *file);
int rdif_file_punch(struct file *file, loff_t offset, loff_t len);
bool rdif_file_page_uptodate(struct file *file, loff_t pos);
ssize_t rdif_file_rw_bio(struct file *file, struct bio *bio, loff_t pos,
		unsigned int bytes, bool write);
ssize_t rdif_file_write_kvec(struct file *file, const struct kvec *vec,
		unsigned long nr, loff_t pos);
bool rdif_is_err(const void *ptr);
unsigned int rdif_backing_io_save(void);
void rdif_backing_io_restore(unsigned int old);
void rdif_cond_resched(void);
const void *rdif_file_inode(struct file *file);
bool rdif_file_is_pseudo(struct file *file);
int rdif_path_is_pseudo(const char *name);
void rdif_rq_requeue(struct request *rq);
struct workqueue_struct *rdif_alloc_workqueue(const char *name);
void rdif_flush_workqueue(struct workqueue_struct *wq);

unsigned int rdif_rq_file_pdu_size(void);
struct work_struct;
struct blk_mq_tag_set;
void rdif_rq_init_work(struct blk_mq_tag_set *set, struct request *rq, void (*start)(struct work_struct *),
		void (*done)(struct work_struct *));
struct request *rdif_rq_from_start_work(struct work_struct *work);
struct request *rdif_rq_from_done_work(struct work_struct *work);
int rdif_rq_defer(struct request *rq, struct workqueue_struct *wq);
int rdif_rq_file_start(struct file *file, struct request *rq, loff_t pos,
		bool write);
long rdif_rq_file_result(struct request *rq);
bool rdif_file_dio_align(struct file *file, unsigned int *min_size,
		unsigned int *mem_align);

struct rdif_lower;
struct queue_limits;
struct blk_integrity;
struct rdif_lower *rdif_lower_open(const char *path, int *err);
void rdif_lower_close(struct rdif_lower *l);
u64 rdif_lower_sectors(struct rdif_lower *l);
unsigned int rdif_lower_block_size(struct rdif_lower *l);
void rdif_lower_integrity(struct rdif_lower *l, struct blk_integrity *bi);
int rdif_lower_stack_limits(struct rdif_lower *l, struct queue_limits *lim);
int rdif_rq_lower_start(struct rdif_lower *l, struct request *rq,
		struct workqueue_struct *wq, bool end_direct, bool bounce, s64 shift, unsigned int own_md,
		unsigned int interval_exp,
		void (*fix)(void *ctx, struct bio *clone, struct bio *src),
		void *ctx);
void *rdif_rq_lower_take_pi(struct request *rq, size_t *len);
bool rdif_rq_lower_status(struct request *rq, u8 *status);

#endif /* RDIF_BLK_HELPERS_H */
