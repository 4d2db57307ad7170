// SPDX-License-Identifier: GPL-2.0

//! KUnit tests for rdif's pure logic: PI formats, guards, reference tags,
//! escapes and profile validation; and the memory store (intervals with
//! their metadata across blocks and shards, reset, escape metadata); the
//! per-CPU counters behind the `stats` file; and the spans that keep
//! overlapping requests to a backing file apart.
//!
//! Built as its own module (`rdif_kunit.ko`) so that loading `rdif.ko`
//! never runs tests. Guards are checked against check values computed
//! independently of the kernel (the CRC catalogue's values for
//! "123456789" and the worked example of RFC 1071).

// The same source files as in rdif.ko: an inline module at this directory
// makes `pi` and its children resolve exactly as they do there, and the
// re-export below lets `crate::pi` name it as it does in rdif.ko.
#[allow(dead_code)]
#[path = "."]
mod src {
    pub(crate) mod device {
        pub(crate) mod cache {
            pub(crate) mod plan;
        }
        pub(crate) mod inflight;
    }
    pub(crate) mod ffi {
        pub(crate) mod crc;
        pub(crate) mod percpu;
        pub(crate) mod smp;
        pub(crate) mod sort;
    }
    pub(crate) mod inject;
    pub(crate) mod pi;
    pub(crate) mod settings;
    pub(crate) mod stats;
    pub(crate) mod store {
        mod access;
        pub(crate) mod header;
        pub(crate) mod journal;
        pub(crate) mod mem;
        pub(crate) mod pages;
        pub(crate) use access::{Slot, StoreError};
        pub(crate) use mem::CHUNK;
    }
}
pub(crate) use src::{ffi, pi, settings, stats};

use kernel::prelude::*;

module! {
    type: RdifKunit,
    name: "rdif_kunit",
    authors: ["rdif developers"],
    description: "KUnit tests for rdif's protection information logic",
    license: "GPL",
}

struct RdifKunit;

impl kernel::Module for RdifKunit {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        Ok(RdifKunit)
    }
}

#[kunit_tests(rdif_pi)]
mod tests {
    use super::src::pi::*;

    const CHECK: &[u8] = b"123456789";

    fn profile(csum: Csum, ref_tag: bool, bs: u32, ms: u32, off: u32, iv: u32) -> Profile {
        match Profile::new(&ProfileConfig {
            csum,
            ref_tag,
            block_size: bs,
            metadata_size: ms,
            pi_offset: off,
            interval: iv,
        }) {
            Ok(p) => p,
            Err(_) => panic!("valid profile refused"),
        }
    }

    fn guard_of(csum: Csum, parts: &[&[u8]]) -> u64 {
        let mut g = Guard::new(csum);
        for p in parts {
            g.update(p);
        }
        g.finish()
    }

    #[test]
    fn crc16_check_value() {
        assert_eq!(guard_of(Csum::Crc16, &[CHECK]), 0xd0db);
    }

    #[test]
    fn crc64_nvme_check_value() {
        assert_eq!(guard_of(Csum::Crc64, &[CHECK]), 0xae8b_1486_0a79_9888);
    }

    #[test]
    fn ip_checksum_rfc1071_example() {
        // RFC 1071 section 3: the sum of these bytes is ddf2, its
        // complement 220d, stored in network order.
        let data = [0x00u8, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        let g = guard_of(Csum::Ip, &[&data]) as u16;
        assert_eq!(g.to_ne_bytes(), [0x22, 0x0d]);
        let p = profile(Csum::Ip, false, 4096, 0, 0, 0);
        let mut md = [0u8; 8];
        p.write_tuple(
            &mut md,
            &Tuple {
                guard: u64::from(g),
                app: 0,
                reftag: 0,
            },
        );
        assert_eq!(md[..2], [0x22, 0x0d]);
    }

    #[test]
    fn guard_is_incremental() {
        let data = b"0123456789abcdef\x01\xfe\xff\x80xyz";
        for csum in [Csum::Crc16, Csum::Crc64, Csum::Ip] {
            let whole = guard_of(csum, &[data]);
            assert_eq!(
                guard_of(csum, &[&data[..4], &data[4..12], &data[12..]]),
                whole
            );
            // Pieces of odd length and at odd offsets: every split point.
            for a in 0..data.len() {
                for b in a..data.len() {
                    let parts: [&[u8]; 3] = [&data[..a], &data[a..b], &data[b..]];
                    assert_eq!(guard_of(csum, &parts), whole);
                }
            }
            let mut bytes: [&[u8]; 32] = [&[]; 32];
            for (slot, b) in bytes.iter_mut().zip(data.chunks(1)) {
                *slot = b;
            }
            assert_eq!(guard_of(csum, &bytes), whole);
        }
    }

    #[test]
    fn t10_tuple_layout() {
        let p = profile(Csum::Crc16, true, 512, 0, 0, 0);
        let t = Tuple {
            guard: 0xd0db,
            app: 0x1234,
            reftag: 0x89ab_cdef,
        };
        let mut md = [0u8; 8];
        p.write_tuple(&mut md, &t);
        assert_eq!(md, [0xd0, 0xdb, 0x12, 0x34, 0x89, 0xab, 0xcd, 0xef]);
        assert_eq!(p.read_tuple(&md), Some(t));
    }

    #[test]
    fn crc64_tuple_layout() {
        let p = profile(Csum::Crc64, true, 4096, 0, 0, 0);
        assert_eq!(p.metadata_size(), 16);
        let t = Tuple {
            guard: 0x0102_0304_0506_0708,
            app: 0x090a,
            reftag: 0x0b0c_0d0e_0f10,
        };
        let mut md = [0u8; 16];
        p.write_tuple(&mut md, &t);
        let want: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
        assert_eq!(md, want);
        assert_eq!(p.read_tuple(&md), Some(t));
    }

    #[test]
    fn corrupt_flips_one_byte_of_one_field() {
        // CRC64 tuple at offset 8 of 32 bytes: the low byte of each field
        // is at tuple offsets 7 (guard), 9 (app) and 15 (ref).
        let p = profile(Csum::Crc64, true, 4096, 32, 8, 0);
        let mut orig = [0u8; 32];
        for (i, b) in orig.iter_mut().enumerate() {
            *b = i as u8;
        }
        for (field, at) in [
            (TupleField::Guard, 8 + 7),
            (TupleField::App, 8 + 9),
            (TupleField::Ref, 8 + 15),
        ] {
            let mut md = orig;
            assert!(p.corrupt(&mut md, field));
            for (i, (a, b)) in md.iter().zip(orig.iter()).enumerate() {
                assert_eq!(a ^ b, if i == at { 0xff } else { 0 });
            }
        }
        // T10 tuple: guard low byte 1, app 3, ref 7.
        let p = profile(Csum::Crc16, true, 512, 0, 0, 0);
        let mut md = [0u8; 8];
        assert!(p.corrupt(&mut md, TupleField::Ref));
        assert_eq!(md, [0, 0, 0, 0, 0, 0, 0, 0xff]);
        assert!(p.corrupt(&mut md, TupleField::Guard));
        assert_eq!(md, [0, 0xff, 0, 0, 0, 0, 0, 0xff]);
        // No tuple: nothing to corrupt, nothing changed.
        let p = profile(Csum::None, true, 512, 8, 0, 0);
        let mut md = [7u8; 8];
        assert!(!p.corrupt(&mut md, TupleField::Guard));
        assert_eq!(md, [7u8; 8]);
    }

    #[test]
    fn tuple_at_offset_and_guard_covers_prefix() {
        let p = profile(Csum::Crc16, true, 4096, 64, 56, 0);
        let mut md = [0u8; 64];
        for (i, b) in md.iter_mut().enumerate() {
            *b = i as u8;
        }
        let data = [0x5au8; 4096];
        let mut g = p.guard();
        g.update(&data);
        let guard = p.finish_guard(g, &md);
        assert_eq!(guard, guard_of(Csum::Crc16, &[&data, &md[..56]]));
        p.generate(&mut md, guard, 7);
        let t = p.read_tuple(&md).unwrap_or(Tuple {
            guard: 0,
            app: 1,
            reftag: 0,
        });
        assert_eq!(
            t,
            Tuple {
                guard,
                app: 0,
                reftag: 7
            }
        );
        assert!(p.check(&t, guard, 7, Checks::DEVICE).is_ok());
        // The opaque prefix is untouched by generate.
        for (i, b) in md[..56].iter().enumerate() {
            assert_eq!(*b, i as u8);
        }
    }

    #[test]
    fn reference_tags() {
        let p512 = profile(Csum::Crc16, true, 4096, 0, 0, 512);
        assert_eq!(p512.sector_to_interval(8), 8);
        let p4k = profile(Csum::Crc16, true, 4096, 0, 0, 0);
        assert_eq!(p4k.sector_to_interval(8), 1);
        assert_eq!(p4k.expected_ref((1 << 32) + 5), 5);
        let p64 = profile(Csum::Crc64, true, 4096, 0, 0, 0);
        assert_eq!(p64.expected_ref((1 << 32) + 5), (1 << 32) + 5);
        assert_eq!(p64.expected_ref((1 << 48) + 5), 5);
    }

    #[test]
    fn escape_rules() {
        let t1 = profile(Csum::Crc16, true, 512, 0, 0, 0);
        let t3 = profile(Csum::Crc16, false, 512, 0, 0, 0);
        let e64 = profile(Csum::Crc64, false, 4096, 0, 0, 0);
        let app_only = Tuple {
            guard: 0,
            app: 0xffff,
            reftag: 0,
        };
        let both = Tuple {
            guard: 0,
            app: 0xffff,
            reftag: 0xffff_ffff,
        };
        assert!(t1.is_escape(&app_only));
        assert!(!t3.is_escape(&app_only));
        assert!(t3.is_escape(&both));
        assert!(!e64.is_escape(&both));
        assert!(e64.is_escape(&Tuple {
            guard: 0,
            app: 0xffff,
            reftag: (1 << 48) - 1
        }));
        // What an unwritten interval reads as is an escape in every format.
        for p in [t1, t3, e64] {
            let mut md = [0u8; 16];
            let md = &mut md[..p.metadata_size()];
            p.fill_escape(md);
            let t = p.read_tuple(md).unwrap_or(app_only);
            assert!(p.is_escape(&t));
            assert!(p.check(&t, 1234, 99, Checks::DEVICE).is_ok());
        }
    }

    #[test]
    fn checks() {
        let t1 = profile(Csum::Crc16, true, 512, 0, 0, 0);
        let t3 = profile(Csum::Crc16, false, 512, 0, 0, 0);
        let good = Tuple {
            guard: 0xabcd,
            app: 7,
            reftag: 42,
        };
        let all = Checks {
            guard: true,
            reftag: true,
            apptag: Some(7),
        };
        assert_eq!(t1.check(&good, 0xabcd, 42, all), Ok(()));
        assert_eq!(t1.check(&good, 0xabce, 42, all), Err(PiError::Guard));
        assert_eq!(t1.check(&good, 0xabcd, 43, all), Err(PiError::Ref));
        assert_eq!(
            t1.check(
                &good,
                0xabcd,
                42,
                Checks {
                    apptag: Some(8),
                    ..all
                }
            ),
            Err(PiError::App)
        );
        // Cleared flags skip the check.
        let none = Checks {
            guard: false,
            reftag: false,
            apptag: None,
        };
        assert_eq!(t1.check(&good, 0, 0, none), Ok(()));
        // Type 3 never checks the reference tag.
        assert_eq!(t3.check(&good, 0xabcd, 43, all), Ok(()));
    }

    #[test]
    fn profile_validation() {
        let ok = ProfileConfig {
            csum: Csum::Crc16,
            ref_tag: true,
            block_size: 4096,
            metadata_size: 0,
            pi_offset: 0,
            interval: 0,
        };
        assert!(Profile::new(&ok).is_ok());
        for bad in [
            ProfileConfig {
                block_size: 1000,
                ..ok
            },
            ProfileConfig {
                block_size: 8192,
                ..ok
            },
            ProfileConfig {
                interval: 8192,
                ..ok
            },
            ProfileConfig {
                interval: 256,
                ..ok
            },
            ProfileConfig {
                interval: 1536,
                ..ok
            },
            ProfileConfig {
                metadata_size: 300,
                ..ok
            },
            ProfileConfig {
                metadata_size: 8,
                pi_offset: 1,
                ..ok
            },
            ProfileConfig {
                csum: Csum::Crc64,
                metadata_size: 8,
                ..ok
            },
            ProfileConfig {
                csum: Csum::None,
                metadata_size: 8,
                pi_offset: 4,
                ..ok
            },
            // Sums that overflow a u32 (an oops with overflow checks, a
            // wrapped and accepted value without them).
            ProfileConfig {
                metadata_size: 64,
                pi_offset: u32::MAX,
                ..ok
            },
            ProfileConfig {
                metadata_size: 64,
                pi_offset: u32::MAX - 7,
                ..ok
            },
            ProfileConfig {
                metadata_size: u32::MAX,
                pi_offset: u32::MAX - 8,
                ..ok
            },
            ProfileConfig {
                block_size: u32::MAX,
                ..ok
            },
            ProfileConfig {
                block_size: 1 << 31,
                ..ok
            },
            ProfileConfig {
                interval: 1 << 31,
                ..ok
            },
            ProfileConfig {
                block_size: 0,
                ..ok
            },
        ] {
            assert!(Profile::new(&bad).is_err());
        }
        let nop = Profile::new(&ProfileConfig {
            csum: Csum::None,
            metadata_size: 8,
            ..ok
        });
        assert!(nop.is_ok_and(|p| !p.ref_tag() && p.has_metadata() && p.tag_size() == 0));
        let plain = Profile::new(&ProfileConfig {
            csum: Csum::None,
            ..ok
        });
        assert!(plain.is_ok_and(|p| !p.has_metadata()));
        assert!(Profile::new(&ProfileConfig {
            csum: Csum::Crc64,
            ref_tag: false,
            ..ok
        })
        .is_ok_and(|p| p.tag_size() == 8 && p.metadata_size() == 16));
    }

    #[test]
    fn csum_names() {
        assert_eq!(Csum::parse(b"crc16\n"), Some(Csum::Crc16));
        assert_eq!(Csum::parse(b"crc64"), Some(Csum::Crc64));
        assert_eq!(Csum::parse(b"ip"), Some(Csum::Ip));
        assert_eq!(Csum::parse(b"none"), Some(Csum::None));
        assert_eq!(Csum::parse(b"crc32"), None);
        assert_eq!(Csum::parse(b""), None);
    }
}

#[kunit_tests(rdif_store)]
mod store_tests {
    use super::src::{
        pi::*,
        store::{
            mem::{Chunk, MemStore},
            pages::partial_pages,
            Slot, StoreError,
        },
    };
    use kernel::prelude::*;

    fn profile(bs: u32, iv: u32, ms: u32) -> Result<Profile> {
        Profile::new(&ProfileConfig {
            csum: Csum::Crc16,
            ref_tag: true,
            block_size: bs,
            metadata_size: ms,
            pi_offset: 0,
            interval: iv,
        })
        .map_err(|_| EINVAL)
    }

    /// An empty memory store of `profile(bs, iv, ms)`, and the escape
    /// metadata of one interval.
    fn store(bs: u32, iv: u32, ms: u32) -> Result<(MemStore, KVec<u8>)> {
        let p = profile(bs, iv, ms)?;
        let mut escape = KVec::from_elem(0u8, ms as usize, GFP_KERNEL)?;
        p.fill_escape(&mut escape);
        Ok((MemStore::new(p)?, escape))
    }

    /// The byte a test pattern has at byte `k` of interval `i`.
    fn pattern(i: u64, k: usize) -> u8 {
        ((i * 7 + k as u64) % 251) as u8 ^ 0x5a
    }

    /// Writes intervals `first..first + n` with the pattern as data and
    /// the interval number (repeated) as metadata.
    fn write(m: &MemStore, first: u64, n: u64, reserved: bool) -> Result<(), StoreError> {
        let mut next = first;
        m.write(first, n, reserved, |i, slot| {
            // In order, each interval once.
            if i != next {
                return Err(StoreError::Io);
            }
            next += 1;
            let Some((data, meta)) = slot.bytes() else {
                return Err(StoreError::Io);
            };
            for (k, b) in data.iter_mut().enumerate() {
                *b = pattern(i, k);
            }
            meta.fill(i as u8);
            Ok(())
        })
    }

    /// Whether intervals `first..first + n` read as `want(i)` says: `true`
    /// for written (pattern, metadata `i`), `false` for never written
    /// (zeroes, escape metadata `escape`).
    fn check(m: &MemStore, first: u64, n: u64, escape: &[u8], want: impl Fn(u64) -> bool) -> bool {
        let mut ok = true;
        let mut next = first;
        let r = m.read(first, n, true, |i, d, md| {
            ok &= i == next && md.len() == escape.len();
            next += 1;
            if want(i) {
                ok &= d.iter().enumerate().all(|(k, b)| *b == pattern(i, k));
                ok &= md.iter().all(|b| *b == i as u8);
            } else {
                ok &= d.iter().all(|b| *b == 0) && md == escape;
            }
            Ok::<(), StoreError>(())
        });
        ok && r.is_ok() && next == first + n
    }

    /// The pages a write touches only in part, each once: what
    /// `FileStore::prepare_write` reads in before changing anything.
    #[test]
    fn pages_read_in_before_a_write() {
        const P: u64 = kernel::page::PAGE_SIZE as u64;
        let pages = |s, e| -> KVec<u64> {
            let mut v = KVec::new();
            for p in partial_pages(s, e) {
                assert!(v.push(p, GFP_KERNEL).is_ok());
            }
            v
        };
        // Whole pages: nothing to read in.
        assert!(pages(P, 3 * P).is_empty());
        assert!(pages(100, 100).is_empty());
        // 8 bytes of metadata inside one page: that page, once.
        assert_eq!(&pages(P + 100, P + 108)[..], &[P + 100]);
        assert_eq!(&pages(P, P + 8)[..], &[P + 7]);
        assert_eq!(&pages(P - 8, P)[..], &[P - 8]);
        // Across a page boundary: both pages.
        assert_eq!(&pages(P - 96, P + 104)[..], &[P - 96, P + 103]);
        // Aligned start, ragged end several pages on, and the reverse.
        assert_eq!(&pages(2 * P, 4 * P + 100)[..], &[4 * P + 99]);
        assert_eq!(&pages(P + 904, 4 * P)[..], &[P + 904]);
    }

    #[test]
    fn intervals_across_blocks_and_shards() -> Result {
        // 8 intervals of 512 bytes per 4 KiB block, 16 blocks per shard run.
        let (m, escape) = store(512, 0, 8)?;
        // Nothing written: zeroes and escape PI.
        assert!(check(&m, 0, 300, &escape, |_| false));
        // From inside block 15 (the last of shard 0's run) to inside 17.
        let (first, n) = (15 * 8 + 3, 2 * 8);
        m.reserve(first, n).map_err(|_| ENOMEM)?;
        write(&m, first, n, true).map_err(|_| EIO)?;
        let written = |i: u64| (first..first + n).contains(&i);
        assert!(check(&m, 14 * 8, 5 * 8, &escape, written));
        // Without metadata wanted, the callback sees none.
        let r = m.read(first, 1, false, |_, _, md| {
            if md.is_empty() {
                Ok(())
            } else {
                Err(StoreError::Io)
            }
        });
        assert!(r.is_ok());
        // An error of the callback stops the access.
        let mut calls = 0;
        let r = m.read(first, n, true, |_, _, _| {
            calls += 1;
            Err(StoreError::Io)
        });
        assert!(r.is_err() && calls == 1);
        // Reset one interval, and a whole block (16, freed).
        m.reset(first + 1, 1);
        m.reset(16 * 8, 8);
        let left = |i: u64| written(i) && i != first + 1 && !(16 * 8..17 * 8).contains(&i);
        assert!(check(&m, 14 * 8, 5 * 8, &escape, left));
        // An unreserved write allocates the blocks it comes to: here
        // across runs (and shards) into the freed block 16.
        write(&m, 16 * 8 - 2, 7, false).map_err(|_| EIO)?;
        let left2 = |i: u64| left(i) || (16 * 8 - 2..16 * 8 + 5).contains(&i);
        assert!(check(&m, 14 * 8, 5 * 8, &escape, left2));
        // Modify in place: data and metadata of one interval together.
        m.modify(16 * 8 + 2, |d, md| {
            d.fill(0);
            md.copy_from_slice(&escape);
        })
        .map_err(|_| EIO)?;
        let left3 = |i: u64| left2(i) && i != 16 * 8 + 2;
        assert!(check(&m, 14 * 8, 5 * 8, &escape, left3));
        Ok(())
    }

    #[test]
    fn runs_share_shards_and_are_freed() -> Result {
        // One 4 KiB interval per block; runs of 16 blocks, dealt out to 32
        // shards: blocks 0 and 512 are in different runs of one shard.
        let (m, escape) = store(4096, 0, 8)?;
        m.reserve(14, 4).map_err(|_| ENOMEM)?;
        write(&m, 14, 4, true).map_err(|_| EIO)?;
        write(&m, 512, 1, false).map_err(|_| EIO)?;
        let w1 = |i: u64| (14..18).contains(&i) || i == 512;
        assert!(check(&m, 0, 20, &escape, w1));
        assert!(check(&m, 500, 30, &escape, w1));
        // Freeing every block of a run frees the run; the other run of the
        // shard keeps its data, and the run comes back on the next write.
        m.reset(0, 16);
        let w2 = |i: u64| w1(i) && i >= 16;
        assert!(check(&m, 0, 20, &escape, w2));
        assert!(check(&m, 500, 30, &escape, w2));
        write(&m, 15, 1, false).map_err(|_| EIO)?;
        let w3 = |i: u64| w2(i) || i == 15;
        assert!(check(&m, 0, 20, &escape, w3));
        // A reset across runs and shards, of blocks never written too.
        m.reset(10, 520);
        assert!(check(&m, 0, 600, &escape, |_| false));
        Ok(())
    }

    #[test]
    fn one_interval_per_block_and_no_metadata() -> Result {
        // 4 KiB intervals with 16 bytes of metadata: one per block.
        let (m, escape) = store(4096, 0, 16)?;
        m.reserve(5, 2).map_err(|_| ENOMEM)?;
        write(&m, 5, 2, true).map_err(|_| EIO)?;
        assert!(check(&m, 0, 10, &escape, |i| i == 5 || i == 6));
        // A block that holds one interval is offered whole: a writer may
        // give the store a block of its own instead of copying into it, and
        // gets the old one back.
        let mut mine = KBox::init(pin_init::init_zeroed::<Chunk>(), GFP_KERNEL)?;
        mine.0.fill(0xa5);
        let r = m.write(6, 1, false, |i, slot| match slot {
            Slot::Whole { data, meta } => {
                core::mem::swap(data, &mut mine);
                meta.fill(i as u8);
                Ok(())
            }
            _ => Err(StoreError::Io),
        });
        assert!(r.is_ok());
        assert!(mine.0.iter().enumerate().all(|(k, b)| *b == pattern(6, k)));
        let r = m.read(6, 1, true, |_, d, md| {
            if d.iter().all(|b| *b == 0xa5) && md.iter().all(|b| *b == 6) {
                Ok(())
            } else {
                Err(StoreError::Io)
            }
        });
        assert!(r.is_ok());
        assert!(check(&m, 0, 6, &escape, |i| i == 5));
        // No metadata at all: empty metadata slices.
        let p = Profile::new(&ProfileConfig {
            csum: Csum::None,
            ref_tag: false,
            block_size: 512,
            metadata_size: 0,
            pi_offset: 0,
            interval: 0,
        })
        .map_err(|_| EINVAL)?;
        let m = MemStore::new(p)?;
        write(&m, 9, 1, false).map_err(|_| EIO)?;
        assert!(check(&m, 0, 16, &[], |i| i == 9));
        Ok(())
    }
}

#[kunit_tests(rdif_journal)]
mod journal_tests {
    use super::src::store::journal::*;

    #[test]
    fn superblock_round_trip_and_damage() {
        let sb = encode_super(7);
        assert_eq!(decode_super(&sb), Some(7));
        for i in 0..SUPER_LEN {
            let mut bad = sb;
            bad[i] ^= 0x10;
            assert_eq!(decode_super(&bad), None);
        }
        assert_eq!(decode_super(&[0; SUPER_LEN]), None);
    }

    #[test]
    fn entry_round_trip_size_and_checksum() {
        let e = Entry {
            kind: Kind::Write,
            generation: 3,
            seq: 9,
            first: 1 << 40,
            count: 8,
            payload: 8 * (512 + 8),
        };
        let mut hdr = e.encode();
        assert_eq!(Entry::decode(&hdr), Some(e));
        // A header block, then the payload rounded up to 512 bytes.
        assert_eq!(e.size(), Some(512 + 4608));
        let reset = Entry {
            kind: Kind::Reset,
            payload: 0,
            ..e
        };
        assert_eq!(reset.size(), Some(512));
        assert_eq!(
            Entry {
                payload: u64::MAX,
                ..e
            }
            .size(),
            None
        );
        // The checksum covers the header fields and the payload.
        let payload = [0x5au8; 100];
        let mut crc = Entry::crc_start(&hdr);
        crc.update(&payload);
        Entry::seal(&mut hdr, crc);
        let check = |hdr: &[u8; HEADER_LEN], payload: &[u8]| {
            let mut crc = Entry::crc_start(hdr);
            crc.update(payload);
            crc.finish() == Entry::stored_crc(hdr)
        };
        assert!(check(&hdr, &payload));
        let mut torn = payload;
        torn[99] = 0;
        assert!(!check(&hdr, &torn));
        let mut other = hdr;
        other[32] ^= 1;
        assert!(!check(&other, &payload));
        // Not an entry: wrong magic, unknown kind, reserved bytes set.
        for (at, v) in [(0, b'X'), (8, 3), (12, 1)] {
            let mut bad = hdr;
            bad[at] = v;
            assert_eq!(Entry::decode(&bad), None);
        }
    }

    #[test]
    fn entry_checksums_crc32c_and_version_2_crc64() {
        // CRC32C as the CRC catalogue defines it ("CRC-32/ISCSI").
        let mut c = EntrySum::Crc32c(!0);
        c.update(b"1234");
        c.update(b"56789");
        assert_eq!(c.finish(), 0xe306_9283);
        let e = Entry {
            kind: Kind::Write,
            generation: 1,
            seq: 0,
            first: 5,
            count: 1,
            payload: 4104,
        };
        let payload = [0xa5u8; 4104];
        let seal = |mut hdr: [u8; HEADER_LEN]| {
            let mut crc = Entry::crc_start(&hdr);
            crc.update(&payload);
            Entry::seal(&mut hdr, crc);
            hdr
        };
        let check = |hdr: &[u8; HEADER_LEN]| {
            let mut crc = Entry::crc_start(hdr);
            crc.update(&payload);
            crc.finish() == Entry::stored_crc(hdr)
        };
        // Entries are written with CRC32C: the checksum fits in 32 bits.
        let new = seal(e.encode());
        assert!(check(&new));
        assert_eq!(Entry::stored_crc(&new) >> 32, 0);
        // An entry of layout version 2 ("RDIFJENT") is still read, with
        // its CRC64-NVMe, computed here as that version did.
        let mut old = e.encode();
        old[0..8].copy_from_slice(b"RDIFJENT");
        assert_eq!(Entry::decode(&old), Some(e));
        let mut crc64 = crate::pi::Guard::new(crate::pi::Csum::Crc64);
        crc64.update(&old[..56]);
        crc64.update(&payload);
        old[56..64].copy_from_slice(&crc64.finish().to_le_bytes());
        assert!(check(&old));
        assert_eq!(seal(old), old);
        // The magic says which checksum: swapped, neither passes.
        let mut swapped = new;
        swapped[0..8].copy_from_slice(b"RDIFJENT");
        assert!(!check(&swapped));
        let mut swapped = old;
        swapped[0..8].copy_from_slice(&new[0..8]);
        assert!(!check(&swapped));
    }
}

#[kunit_tests(rdif_percpu)]
mod percpu_tests {
    use super::src::ffi::percpu::PerCpuCounters;
    use kernel::{alloc::AllocError, prelude::*};

    #[test]
    fn counters_add_sum_zero() -> Result<(), AllocError> {
        let c = PerCpuCounters::<3>::new()?;
        assert_eq!((c.sum(0), c.sum(1), c.sum(2)), (0, 0, 0));
        c.add(1, 5);
        c.add(1, 7);
        c.add(2, u64::MAX);
        c.add(2, 2);
        // Out of range: ignored, reads as 0.
        c.add(3, 9);
        assert_eq!((c.sum(0), c.sum(1), c.sum(2), c.sum(3)), (0, 12, 1, 0));
        c.zero();
        assert_eq!((c.sum(0), c.sum(1), c.sum(2)), (0, 0, 0));
        c.add(0, 1);
        assert_eq!(c.sum(0), 1);
        Ok(())
    }

    /// Each CPU adds to its own copy; the sum sees them all, and zeroing
    /// clears them all.
    #[test]
    fn counters_on_every_cpu() -> Result<(), AllocError> {
        use super::src::ffi::smp::{num_online_cpus, on_each_cpu};
        let c = PerCpuCounters::<2>::new()?;
        let cpus = u64::from(num_online_cpus());
        // The test guests have two CPUs: one CPU would not test the sum.
        assert!(cpus >= 2);
        on_each_cpu(&|| {
            c.add(0, 1);
            c.add(1, 1 << 32);
        });
        assert_eq!((c.sum(0), c.sum(1)), (cpus, cpus << 32));
        on_each_cpu(&|| c.add(0, 2));
        assert_eq!(c.sum(0), 3 * cpus);
        c.zero();
        assert_eq!((c.sum(0), c.sum(1)), (0, 0));
        Ok(())
    }
}

#[kunit_tests(rdif_header)]
mod header_tests {
    use super::src::pi::{Csum, Guard, Profile, ProfileConfig};
    use super::src::store::header::*;

    fn profile(csum: Csum, bs: u32, ms: u32) -> Profile {
        match Profile::new(&ProfileConfig {
            csum,
            ref_tag: true,
            block_size: bs,
            metadata_size: ms,
            pi_offset: 0,
            interval: 0,
        }) {
            Ok(p) => p,
            Err(_) => panic!("valid profile refused"),
        }
    }

    const CAP: u64 = 64 << 20;

    fn encoded(p: &Profile, part: Part, version: u32) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        encode_header(p, &Layout::new(p, CAP), part, version, &mut b);
        b
    }

    /// `b` with its checksum made right again after a crafted change.
    fn resealed(mut b: [u8; HEADER_BYTES]) -> [u8; HEADER_BYTES] {
        let mut crc = Guard::new(Csum::Crc64);
        crc.update(&b[..64]);
        b[64..72].copy_from_slice(&crc.finish().to_le_bytes());
        b
    }

    #[test]
    fn round_trip_of_every_part() {
        let p = profile(Csum::Crc16, 512, 8);
        for part in [Part::Whole, Part::Meta(0x123456), Part::Data(1)] {
            for version in [2, VERSION] {
                let b = encoded(&p, part, version);
                assert_eq!(&b[0..8], &MAGIC);
                let r = check_header(&b, &p, CAP);
                assert_eq!(r, Ok((Layout::new(&p, CAP), part, version)));
            }
        }
        // The layout: data after the header block, metadata and journal
        // each on a 4 KiB boundary after it.
        let l = Layout::new(&p, CAP);
        assert_eq!(l.data_offset, HEADER_SIZE);
        assert_eq!(l.meta_offset, HEADER_SIZE + CAP);
        assert_eq!(l.meta_size, (CAP / 512) * 8);
        assert_eq!(l.journal_offset % 4096, 0);
        assert!(l.total() > l.journal_offset);
    }

    #[test]
    fn damaged_or_foreign_headers() {
        let p = profile(Csum::Crc16, 512, 8);
        let good = encoded(&p, Part::Whole, VERSION);
        // All zeroes (a new file), another magic, an unknown version.
        assert_eq!(
            check_header(&[0; HEADER_BYTES], &p, CAP),
            Err(HeaderError::NotAStore)
        );
        let mut b = good;
        b[0] ^= 1;
        assert_eq!(check_header(&b, &p, CAP), Err(HeaderError::NotAStore));
        for v in [0u32, VERSION + 1, u32::MAX] {
            let mut b = good;
            b[8..12].copy_from_slice(&v.to_le_bytes());
            assert_eq!(
                check_header(&resealed(b), &p, CAP),
                Err(HeaderError::NotAStore)
            );
        }
        let mut b = good;
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(check_header(&b, &p, CAP), Err(HeaderError::Version1));
        // A bit flipped in any field after the version, or in the
        // checksum.
        for i in (16..HEADER_BYTES).step_by(5) {
            let mut b = good;
            b[i] ^= 0x10;
            assert_eq!(check_header(&b, &p, CAP), Err(HeaderError::Corrupt));
        }
    }

    #[test]
    fn crafted_headers_with_a_right_checksum() {
        let p = profile(Csum::Crc16, 512, 8);
        let good = encoded(&p, Part::Whole, VERSION);
        let with = |at: usize, v: u8| {
            let mut b = good;
            b[at] = v;
            check_header(&resealed(b), &p, CAP)
        };
        // Another format than the configured one.
        assert!(matches!(with(16, 1), Err(HeaderError::Mismatch(_))));
        assert!(matches!(with(17, 0), Err(HeaderError::Mismatch(_))));
        assert!(matches!(with(18, 16), Err(HeaderError::Mismatch(_))));
        // A checksum code or format rdif does not know (CRC64 needs 16
        // bytes of metadata).
        assert_eq!(with(16, 9), Err(HeaderError::Corrupt));
        assert_eq!(with(16, 3), Err(HeaderError::Corrupt));
        assert_eq!(with(18, 4), Err(HeaderError::Corrupt));
        // Another size, and a layout that does not follow from the fields.
        assert!(matches!(
            check_header(&good, &p, CAP * 2),
            Err(HeaderError::Mismatch(_))
        ));
        assert_eq!(with(41, 1), Err(HeaderError::Corrupt));
        // Values rdif never writes: an interval spelt 0 ("the block
        // size"), a ref_tag byte of 2, a role it does not know, a split
        // store's part without identifier, a whole store's with one.
        let mut b = good;
        b[20..24].fill(0);
        assert_eq!(
            check_header(&resealed(b), &p, CAP),
            Err(HeaderError::Unexpected)
        );
        assert_eq!(with(17, 2), Err(HeaderError::Unexpected));
        assert_eq!(with(28, 3), Err(HeaderError::Unexpected));
        assert_eq!(with(28, 1), Err(HeaderError::Unexpected));
        assert_eq!(with(29, 5), Err(HeaderError::Unexpected));
        // Another profile: the same header is refused by a CRC64 device.
        let p64 = profile(Csum::Crc64, 4096, 16);
        assert!(matches!(
            check_header(&good, &p64, CAP),
            Err(HeaderError::Mismatch(_))
        ));
        // Every reason reads as one line.
        for e in [
            HeaderError::NotAStore,
            HeaderError::Version1,
            HeaderError::Corrupt,
            HeaderError::Unexpected,
        ] {
            assert!(!e.reason().is_empty() && !e.reason().contains('\n'));
        }
    }
}

#[kunit_tests(rdif_settings)]
mod settings_tests {
    use super::src::pi::Csum;
    use super::src::settings::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"4096\n"), Some(4096));
        assert_eq!(parse_u64(b" 17 "), Some(17));
        assert_eq!(parse_u64(b"0x1f"), Some(31));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"\n",
            b"-1",
            b"18446744073709551616",
            b"0x",
            b"0xg",
            b"1e3",
            b"12abc",
            b"+",
            b"\xff",
        ] {
            assert_eq!(parse_u64(bad), None);
        }
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
    }

    #[test]
    fn booleans() {
        for t in [&b"1"[..], b"1\n", b"y", b"Y", b"on", b"true"] {
            assert_eq!(parse_bool(t), Some(true));
        }
        for f in [&b"0"[..], b"0\n", b"n", b"N", b"off", b"false"] {
            assert_eq!(parse_bool(f), Some(false));
        }
        // Stricter than kstrtobool, which reads only the first two bytes.
        for bad in [&b""[..], b"2", b"yes_please", b"10", b"o", b"true\n\n"] {
            assert_eq!(parse_bool(bad), None);
        }
    }

    #[test]
    fn validate() {
        let ok = Settings::default();
        let v = ok.validate().ok();
        assert!(v.is_some_and(|v| v.dev.capacity == 256 << 20 && v.hw_queues >= 1));
        let with = |f: fn(&mut Settings)| {
            let mut s = Settings::default();
            f(&mut s);
            s.validate().is_ok()
        };
        assert!(!with(|s| s.size_mib = 0));
        assert!(with(|s| s.size_mib = MAX_SIZE_MIB));
        assert!(!with(|s| s.size_mib = MAX_SIZE_MIB + 1));
        assert!(!with(|s| s.size_mib = u64::MAX));
        assert!(!with(|s| s.queue_depth = 0));
        assert!(with(|s| s.queue_depth = MAX_QUEUE_DEPTH));
        assert!(!with(|s| s.cache_mib = 0));
        assert!(with(|s| s.cache_mib = MAX_CACHE_MIB));
        assert!(!with(|s| s.cache_mib = MAX_CACHE_MIB + 1));
        assert!(!with(|s| s.queue_depth = MAX_QUEUE_DEPTH + 1));
        assert!(!with(|s| s.hw_queues = u32::MAX));
        assert!(with(|s| s.hw_queues = 1));
        assert!(!with(|s| s.block_size = 1000));
        assert!(!with(|s| s.block_size = 8192));
        assert!(with(|s| {
            s.block_size = 4096;
            s.csum = Csum::Crc64;
        }));
        assert!(!with(|s| s.metadata_size = 4));
        assert!(!with(|s| s.pi_offset = u32::MAX));
        assert!(!with(|s| s.interval = 256));
        assert!(!with(|s| s.interval = u32::MAX));
        // The size in bytes cannot overflow: at most 2^40.
        let v = Settings {
            size_mib: MAX_SIZE_MIB,
            ..Settings::default()
        }
        .validate()
        .ok();
        assert!(v.is_some_and(|v| v.dev.capacity == 1 << 40));
    }
}

#[kunit_tests(rdif_inject_parse)]
mod inject_tests {
    use super::src::inject::*;
    use super::src::pi::TupleField;

    fn range(first: u64, count: u64) -> Range {
        Range { first, count }
    }

    #[test]
    fn commands() {
        let guard = Field::Tuple(TupleField::Guard);
        assert_eq!(
            Command::parse(b"corrupt guard 100\n"),
            Ok(Command::Corrupt {
                field: guard,
                range: range(100, 1),
                persistent: false
            })
        );
        assert_eq!(
            Command::parse(b"  corrupt data 5 8 persistent "),
            Ok(Command::Corrupt {
                field: Field::Data,
                range: range(5, 8),
                persistent: true
            })
        );
        assert_eq!(
            Command::parse(b"corrupt ref 3 1 write"),
            Ok(Command::Write {
                fault: WriteFault::Corrupt(Field::Tuple(TupleField::Ref), range(3, 1)),
                range: Some(range(3, 1))
            })
        );
        assert_eq!(
            Command::parse(b"misdirect 500 100 1"),
            Ok(Command::Write {
                fault: WriteFault::Misdirect(500),
                range: Some(range(100, 1))
            })
        );
        assert_eq!(
            Command::parse(b"misdirect 7"),
            Ok(Command::Write {
                fault: WriteFault::Misdirect(7),
                range: None
            })
        );
        assert_eq!(
            Command::parse(b"lost 0x10 2"),
            Ok(Command::Write {
                fault: WriteFault::Lost,
                range: Some(range(16, 2))
            })
        );
        assert_eq!(
            Command::parse(b"fail any 4294967295 resource"),
            Ok(Command::Fail {
                dir: Direction::Any,
                count: u32::MAX,
                how: Failure::Resource
            })
        );
        assert_eq!(
            Command::parse(b"fail read 3 protection"),
            Ok(Command::Fail {
                dir: Direction::Read,
                count: 3,
                how: Failure::Protection
            })
        );
        assert_eq!(Command::parse(b"clear\n"), Ok(Command::Clear));
    }

    #[test]
    fn bad_commands() {
        for bad in [
            &b""[..],
            b"   \n",
            b"frobnicate",
            b"clear now",
            b"corrupt",
            b"corrupt tag 1",
            b"corrupt guard",
            b"corrupt guard x",
            b"corrupt guard 1 0",
            b"corrupt guard 1 2 3",
            b"corrupt guard 1 persistent write",
            b"corrupt guard 1 write 2",
            b"corrupt guard 1 persistent persistent",
            b"corrupt guard 18446744073709551616",
            b"misdirect",
            b"misdirect -1",
            b"misdirect 1 2 0",
            b"misdirect 1 2 3 4",
            b"lost 1 2 3",
            b"fail",
            b"fail both 1 ioerr",
            b"fail read 0 ioerr",
            b"fail read 4294967296 ioerr",
            b"fail read 1",
            b"fail read 1 eio",
            b"fail read 1 ioerr more",
        ] {
            assert!(Command::parse(bad).is_err());
        }
    }
}

#[kunit_tests(rdif_inflight)]
mod inflight_tests {
    use super::src::device::inflight::{InFlight, Span};
    use super::stats::{Counter, Counts, Stats, Tally};
    use kernel::prelude::*;

    fn span(start: u64, end: u64, write: bool) -> Span {
        Span { start, end, write }
    }

    #[test]
    fn spans_conflict_on_shared_bytes_with_a_writer() {
        let w = span(4096, 8192, true);
        let r = span(4096, 8192, false);
        // Two reads never wait for each other.
        assert!(!r.conflicts(&span(0, 1 << 20, false)));
        // A write and anything sharing a byte with it do, both ways.
        assert!(w.conflicts(&r) && r.conflicts(&w));
        assert!(w.conflicts(&span(8191, 8192, true)));
        assert!(span(0, 4097, false).conflicts(&w));
        // Touching is not sharing.
        assert!(!w.conflicts(&span(0, 4096, true)));
        assert!(!w.conflicts(&span(8192, 12288, true)));
        assert!(!span(0, 4096, true).conflicts(&w));
    }

    #[test]
    fn admit_enter_leave_wake() -> Result {
        let mut f = InFlight::new(2)?;
        let counted = |n| {
            let t = Tally::new();
            t.add(Counter::FileRequests, n);
            t
        };
        let a = span(0, 4096, true);
        assert!(f.admit(&a));
        assert!(f.enter(1, a, counted(1)).is_ok());
        // A read of the same block waits; one elsewhere does not.
        assert!(!f.admit(&span(0, 512, false)));
        assert!(f.admit(&span(4096, 8192, false)));
        assert!(f.enter(2, span(4096, 8192, false), counted(2)).is_ok());
        // No room for a third (the capacity is never exceeded): its
        // counts come back.
        assert!(f
            .enter(3, span(1 << 20, (1 << 20) + 4096, false), counted(3))
            .is_err());
        assert_eq!(f.peak(), 2);
        // Leaving hands back the request's counts, and tells that a
        // request waited, once.
        let stats = Stats::new()?;
        let (t, woke) = f.leave(1);
        assert!(woke);
        stats.commit(&t.ok_or(EINVAL)?);
        assert_eq!(stats.get(Counter::FileRequests), 1);
        let (t, woke) = f.leave(2);
        assert!(!woke);
        stats.commit(&t.ok_or(EINVAL)?);
        assert_eq!(stats.get(Counter::FileRequests), 3);
        assert!(f.admit(&span(0, 512, false)));
        // An unknown key changes nothing.
        assert!(matches!(f.leave(7), (None, false)));
        assert!(f.enter(3, a, Tally::new()).is_ok());
        assert!(!f.admit(&span(0, 4096, true)));
        assert!(f.leave(3).1);
        assert!(f.admit(&span(0, 4096, true)));
        Ok(())
    }
}

#[kunit_tests(rdif_powercut)]
mod powercut_tests {
    use super::src::device::cache::plan::*;
    use kernel::prelude::*;

    #[test]
    fn policies_parse() {
        assert_eq!(Policy::parse(b"all"), Ok(Policy::All));
        assert_eq!(Policy::parse(b"none"), Ok(Policy::None));
        assert_eq!(
            Policy::parse(b"random 7"),
            Ok(Policy::Random {
                seed: 7,
                percent: 50
            })
        );
        assert_eq!(
            Policy::parse(b"random 0xff 100"),
            Ok(Policy::Random {
                seed: 255,
                percent: 100
            })
        );
        assert_eq!(Policy::parse(b"prefix 3"), Ok(Policy::Prefix(3)));
        for bad in [
            &b""[..],
            b"al",
            b"all 1",
            b"random",
            b"random x",
            b"random 1 101",
            b"random -1",
            b"random 18446744073709551616",
            b"random 1 2 3",
            b"prefix",
            b"prefix -2",
        ] {
            assert!(Policy::parse(bad).is_err());
        }
    }

    #[test]
    fn survival_is_deterministic() {
        let p = Policy::Random {
            seed: 42,
            percent: 50,
        };
        let mut kept = 0;
        for k in 0..1000 {
            let s = p.survives(k, k * 3, false);
            assert_eq!(s, p.survives(k, k * 3, false));
            kept += u32::from(s);
            // An atomic write's blocks all go the same way.
            assert_eq!(p.survives(k, 1, true), p.survives(k, 2, true));
        }
        // About half survive.
        assert!((400..600).contains(&kept));
        let none = Policy::Random {
            seed: 42,
            percent: 0,
        };
        let all = Policy::Random {
            seed: 42,
            percent: 100,
        };
        assert!((0..100).all(|k| !none.survives(k, k, false) && all.survives(k, k, false)));
        assert!(Policy::Prefix(2).survives(1, 9, false));
        assert!(!Policy::Prefix(2).survives(2, 9, false));
    }

    fn mark(interval: u64, entry: u32, keep: bool) -> Mark {
        Mark {
            interval,
            entry,
            keep,
        }
    }

    /// Runs `plan` and returns what it restores, by interval.
    fn restores(marks: &mut [Mark]) -> KVec<(u64, u32)> {
        let mut out = KVec::new();
        let _ = plan(marks, |i, e| out.push((i, e), GFP_KERNEL));
        out
    }

    #[test]
    fn plan_restores_the_write_after_the_newest_kept() {
        // Interval 5: writes 0, 2, 3; interval 6: writes 1, 3; 7: write 3.
        let mut marks = [
            mark(5, 3, false),
            mark(6, 1, true),
            mark(5, 0, true),
            mark(7, 3, true),
            mark(6, 3, false),
            mark(5, 2, false),
        ];
        let r = restores(&mut marks);
        // 5: newest kept is 0, so back to what write 2 replaced; 6: back
        // to what write 3 replaced (write 1's data); 7: kept, untouched.
        assert_eq!(&r[..], &[(5, 2), (6, 3)]);
        // Nothing kept: back to what the oldest write replaced.
        let mut marks = [mark(9, 4, false), mark(9, 1, false), mark(9, 2, false)];
        assert_eq!(&restores(&mut marks)[..], &[(9, 1)]);
        // Newest kept: nothing to do.
        let mut marks = [mark(9, 4, true), mark(9, 1, false)];
        assert!(restores(&mut marks).is_empty());
    }
}
