// SPDX-License-Identifier: GPL-2.0

//! The write path and the device's PI policy for writes.
//!
//! Each byte is read from the submitter's buffer once, with the kernel's
//! iov_iter copy, into memory no reader sees, and checksummed there: what the
//! device checks or generates PI for is exactly what it stores. A write
//! whose PI the device checks is copied and checked whole (every bio of the
//! request) into a staging buffer first, and stored only if all of it
//! passed; a failed check stores nothing. In the memory store, a staged
//! block of data that is one whole interval then takes the place of the
//! stored block (the old block becomes staging space), so that the data is
//! still copied only once. Other writes are copied straight
//! into their place in the store, one interval's data and metadata at a
//! time under the store's lock, the PI generated from the stored copy.

use super::{short, staging::Staging, Device, Outcome};
use crate::{
    blk::{bio::DataStream, bip, request::Bios, Bio, Cursor, Request, Status, REQ_ATOMIC, REQ_FUA},
    inject::WriteFault,
    pi::{Checks, Csum},
    stats::{Counter, Counts},
    store::{Slot, StoreError},
};
use kernel::prelude::*;

/// What the device does with the metadata of a bio it writes.
#[derive(Clone, Copy)]
enum Policy {
    /// The format has no metadata.
    NoMetadata,
    /// Check the PI the payload carries as its flags ask; store it as is.
    Verify(Checks),
    /// Store the payload's metadata as it is (no check asked, or the
    /// format has no tuple), or zeroes without a payload.
    Keep,
    /// Generate PI for data that carries none (PRACT), over the payload's
    /// opaque bytes or zeroes.
    Generate,
    /// Store escape PI for data that carries none (`pract=0`).
    Escape,
}

/// The intervals of a request's bios, in order, with their policies.
struct Source<'a, C: Counts> {
    bios: Bios<'a>,
    data: Option<DataStream<'a, true>>,
    md: Option<Cursor<'a>>,
    policy: Policy,
    /// Intervals left in the current bio.
    left: u64,
    /// The request's counts.
    tally: &'a C,
}

impl<'a, C: Counts> Source<'a, C> {
    fn new(rq: &Request<'a>, tally: &'a C) -> Self {
        Source {
            tally,
            bios: rq.bios(),
            data: None,
            md: None,
            policy: Policy::NoMetadata,
            left: 0,
        }
    }
}

/// Where a write's intervals go.
#[derive(Clone, Copy)]
struct Placement {
    /// The first interval they go to.
    dest: u64,
    /// How many of them are stored (those beyond the device's end are not).
    n: u64,
    /// The store holds their blocks already ([`crate::store::Store::reserve`]).
    reserved: bool,
    /// The request may go to a backing file as a whole.
    whole: bool,
}

impl Device {
    /// The policy for a bio's metadata.
    fn policy(&self, bio: &Bio<'_>) -> Policy {
        let p = &self.cfg.profile;
        if !p.has_metadata() {
            return Policy::NoMetadata;
        }
        let bip = bio.integrity();
        let flags = bip.map_or(0, |b| b.flags());
        // A payload the block layer attached without asking for checks is
        // the zeroed buffer of `write_generate=0`: it carries no PI.
        let carries_pi =
            bip.is_some() && (flags & bip::BLOCK_INTEGRITY == 0 || flags & bip::CHECK_FLAGS != 0);
        match bip {
            _ if p.csum() == Csum::None => Policy::Keep,
            Some(b) if flags & bip::CHECK_FLAGS != 0 => {
                Policy::Verify(Checks::from_bip(flags, b.app_tag()))
            }
            _ if carries_pi => Policy::Keep,
            _ if self.cfg.pract => Policy::Generate,
            _ => Policy::Escape,
        }
    }

    /// Moves `src` to a bio with intervals left.
    fn next_bio(&self, src: &mut Source<'_, impl Counts>) -> Result<(), Status> {
        while src.left == 0 {
            let bio = src.bios.next().ok_or(Status::IO_ERROR)?;
            let (_, n) = self.interval_span(&bio);
            src.policy = self.policy(&bio);
            src.data = Some(bio.data_source());
            src.md = match bio.integrity() {
                Some(b) if self.cfg.profile.has_metadata() => Some(self.payload_cursor(&b, n)?),
                _ => None,
            };
            src.left = n;
            let counter = match src.policy {
                Policy::Verify(_) => Some(Counter::CheckedWrite),
                Policy::Generate => Some(Counter::PractGenerated),
                Policy::Escape => Some(Counter::EscapeWritten),
                Policy::NoMetadata | Policy::Keep => None,
            };
            if let Some(c) = counter {
                src.tally.add(c, n);
            }
        }
        Ok(())
    }

    /// Fills one interval's `data` and metadata `md` from `src`, the
    /// interval `own` of the device (the write's own place), as its
    /// policy says.
    fn fill(
        &self,
        src: &mut Source<'_, impl Counts>,
        own: u64,
        data: &mut [u8],
        md: &mut [u8],
    ) -> Result<(), Status> {
        self.next_bio(src)?;
        src.left -= 1;
        src.data
            .as_mut()
            .ok_or(Status::IO_ERROR)?
            .copy_to(data)
            .map_err(short)?;
        match src.md.as_mut() {
            Some(c) => c.copy_to(md).map_err(short)?,
            None => md.fill(0),
        }
        let p = &self.cfg.profile;
        match src.policy {
            Policy::NoMetadata | Policy::Keep => {}
            Policy::Verify(checks) => {
                let tuple = p.read_tuple(md).ok_or(Status::IO_ERROR)?;
                if !checks.guard {
                    p.check(&tuple, 0, own, checks)
                        .map_err(|e| self.count(e, true))?;
                } else if !p.is_escape(&tuple) {
                    // (An escape tuple has nothing to check.)
                    let mut guard = p.guard();
                    guard.update(data);
                    let guard = p.finish_guard(guard, md);
                    p.check(&tuple, guard, own, checks)
                        .map_err(|e| self.count(e, true))?;
                }
            }
            Policy::Generate => {
                // The device generates PI for the place the write was sent
                // to, from the bytes it stores.
                let mut guard = p.guard();
                guard.update(data);
                let guard = p.finish_guard(guard, md);
                p.generate(md, guard, own);
            }
            Policy::Escape => p.fill_escape_tuple(md),
        }
        Ok(())
    }

    /// Moves `src` over one interval that is not stored.
    fn skip(&self, src: &mut Source<'_, impl Counts>) -> Result<(), Status> {
        self.next_bio(src)?;
        src.left -= 1;
        let p = &self.cfg.profile;
        if let Some(c) = src.data.as_mut() {
            c.skip(p.interval()).map_err(short)?;
        }
        if let Some(c) = src.md.as_mut() {
            c.skip(p.metadata_size()).map_err(short)?;
        }
        Ok(())
    }

    /// Copies and checks a whole request of `n` intervals from `first`,
    /// into the device's spare staging buffer if it is large enough (no
    /// allocation, and no zeroing of memory that is overwritten at once).
    fn stage(
        &self,
        rq: &Request<'_>,
        first: u64,
        n: u64,
        t: &impl Counts,
    ) -> Result<Staging, Status> {
        let p = &self.cfg.profile;
        let n = usize::try_from(n).map_err(|_| Status::IO_ERROR)?;
        let spare = self.spare.lock().take();
        let mut st = match spare {
            Some(st) if st.holds(n) => st,
            _ => Staging::new(p.interval(), p.metadata_size(), n).map_err(|_| Status::RESOURCE)?,
        };
        let mut src = Source::new(rq, t);
        let filled = (0..n).try_for_each(|k| {
            let (d, m) = st.slot(k).ok_or(Status::IO_ERROR)?;
            self.fill(&mut src, first + k as u64, d, m)
        });
        match filled {
            Ok(()) => Ok(st),
            Err(e) => {
                self.keep_spare(st);
                Err(e)
            }
        }
    }

    /// Keeps `st` as the spare staging buffer for the next checked write,
    /// unless it is large (what a large request allocates is small beside
    /// what it moves).
    fn keep_spare(&self, st: Staging) {
        if st.worth_keeping() {
            // The buffer it replaces, if any, is freed outside the lock.
            let _old = self.spare.lock().replace(st);
        }
    }

    /// Handles a write request, or says where it goes as a whole.
    pub(super) fn write(&self, rq: &Request<'_>, t: &impl Counts) -> Result<Outcome, Status> {
        let p = &self.cfg.profile;
        let first = p.sector_to_interval(rq.sector());
        let n = self.intervals_in(u64::from(rq.bytes()));
        // 1. Every payload must hold its bio's metadata. A write whose PI
        //    the device checks is copied and checked whole first.
        //    (Without metadata there is nothing to look at.)
        let mut verify = false;
        if p.has_metadata() {
            for bio in rq.bios() {
                if let Some(b) = bio.integrity() {
                    self.payload_cursor(&b, self.interval_span(&bio).1)?;
                }
                verify |= matches!(self.policy(&bio), Policy::Verify(_));
            }
        }
        let staged = if verify {
            Some(self.stage(rq, first, n, t)?)
        } else {
            None
        };
        // 2. An injected fault may lose the write or store it elsewhere
        //    (its part beyond the end of the device is dropped). The write
        //    holds the rule until it is done; if it is retried instead, it
        //    meets the rule again (see `WriteClaim`).
        // 3. A write that meets a one-shot fault allocates what it needs
        //    where it goes first. Any other write allocates its blocks as
        //    it stores them (see step 4).
        let fit = |dest: u64| n.min(self.nr_intervals().saturating_sub(dest));
        let claim = self.inject.claim_write(first, n);
        let fault = claim.as_ref().map(|c| c.fault());
        let dest = match fault {
            None => first,
            Some(WriteFault::Lost) => {
                if let Some(c) = claim {
                    self.fault_took_effect(c);
                }
                return Ok(Outcome::Done);
            }
            Some(WriteFault::Misdirect(target)) => target,
            // Refused on a device that stores (see `Device::inject`).
            Some(WriteFault::Corrupt(..)) => first,
        };
        let reserved = fault.is_some();
        if reserved {
            self.store.reserve(dest, fit(dest))?;
        }
        let at = Placement {
            dest,
            n: fit(dest),
            reserved,
            whole: fault.is_none(),
        };
        let done = self.store_write(rq, staged, first, at, t);
        if let (Ok(_), Some(c)) = (&done, claim) {
            self.fault_took_effect(c);
        }
        done
    }

    /// Writes the first `n` intervals of `rq`'s data at `dest` straight
    /// from its bios' pages (a store that takes bios).
    fn write_bios(&self, rq: &Request<'_>, dest: u64, n: u64) -> Result<(), Status> {
        let shift = self.cfg.profile.interval_shift();
        let mut left = n << shift;
        let mut at = dest;
        for bio in rq.bios() {
            let bytes = u64::from(bio.size()).min(left);
            if bytes == 0 {
                break;
            }
            // `bytes` is at most the bio's size, a `u32`.
            self.store.write_bio(at, &bio, bytes as u32)?;
            left -= bytes;
            at += bytes >> shift;
        }
        Ok(())
    }

    /// Stores intervals `dest..dest + n` of write `rq` as
    /// [`crate::store::Store::write`] does, through the write cache if the
    /// device has one: it logs what the intervals held before, durable if
    /// `rq` is FUA, to be lost whole if it is atomic.
    fn store_cached<E: From<StoreError>>(
        &self,
        rq: &Request<'_>,
        dest: u64,
        n: u64,
        reserved: bool,
        mut f: impl FnMut(u64, Slot<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some(cache) = &self.cache else {
            return self.store.write(dest, n, reserved, f);
        };
        let (fua, atomic) = (rq.has_flags(REQ_FUA), rq.has_flags(REQ_ATOMIC));
        cache.apply(&self.store, (dest, n), fua, atomic, |rec| {
            self.store.write(dest, n, reserved, |i, mut slot| {
                rec.capture(i, &mut slot);
                f(i, slot)
            })
        })
    }

    /// Stores the `n` intervals of checked copy `st` at `dest` (see
    /// [`Self::store_write`]), then keeps `st` for the next write.
    fn store_staged(
        &self,
        rq: &Request<'_>,
        mut st: Staging,
        dest: u64,
        n: u64,
        reserved: bool,
    ) -> Result<(), Status> {
        let stored = if self.store.in_place() {
            // A file store without journal writes the checked copy itself.
            st.each_meta(|m| self.store.stored_form(m));
            self.store
                .write_runs(dest, n, |k, meta| st.run(k, meta))
                .map_err(Status::from)
        } else {
            self.store_cached(rq, dest, n, reserved, |i, slot| {
                let k = usize::try_from(i - dest).map_err(|_| Status::IO_ERROR)?;
                st.store_into(k, slot).ok_or(Status::IO_ERROR)
            })
        };
        self.keep_spare(st);
        stored
    }

    /// Stores write `rq` (at `first`) as `at` says, from `staged` if it
    /// was copied and checked first.
    fn store_write(
        &self,
        rq: &Request<'_>,
        staged: Option<Staging>,
        first: u64,
        at: Placement,
        t: &impl Counts,
    ) -> Result<Outcome, Status> {
        let Placement {
            dest,
            n: nd,
            reserved,
            whole,
        } = at;
        let p = &self.cfg.profile;
        // A backing file without journal, in a format without metadata,
        // takes each bio's pages as they are (as loop does).
        if self.store.takes_bios() {
            t.add(Counter::WriteIntervals, nd);
            // Whole, with one kiocb, unless misdirected (which goes
            // where no span was admitted).
            if whole && self.store.direct() == Some(true) {
                return Ok(Outcome::ToFile {
                    first: dest,
                    write: true,
                });
            }
            self.write_bios(rq, dest, nd)?;
            return Ok(Outcome::Done);
        }
        // A backing store reads in what the write changes only in part, so
        // that a read error fails the request before anything is written.
        if p.has_metadata() && self.store.may_sleep() {
            self.store.prepare_write(dest, nd)?;
        }
        // 4. Store, each interval's data and metadata together. A memory
        //    store that reserved cannot fail here for lack of memory; one
        //    that did not, and a backing file (ENOMEM from its page cache),
        //    can: the request is then retried whole, rewriting what it
        //    stored before it is acknowledged, as a disk retrying a write
        //    does; a one-shot fault it met is met again by the retry.
        t.add(Counter::WriteIntervals, nd);
        let stored = match staged {
            Some(st) => self.store_staged(rq, st, dest, nd, reserved),
            // Without metadata, the data of all the bios in one walk.
            None if !p.has_metadata() => {
                let mut data = rq.data_source();
                self.store_cached(rq, dest, nd, reserved, |_, slot| match slot.bytes() {
                    Some((d, _)) => data.copy_to(d).map_err(short),
                    None => data.skip(p.interval()).map_err(short),
                })
            }
            None => {
                let mut src = Source::new(rq, t);
                self.store_cached(rq, dest, nd, reserved, |i, slot| match slot.bytes() {
                    Some((data, meta)) => self.fill(&mut src, first + (i - dest), data, meta),
                    // A concurrent discard took the place away: the interval
                    // keeps what the discard made it.
                    None => self.skip(&mut src),
                })
            }
        };
        stored.map(|()| Outcome::Done)
    }
}
