// SPDX-License-Identifier: GPL-2.0

//! Pass-through: requests forwarded to a lower block device with their
//! integrity payloads (see [`crate::blk::lower`]).
//!
//! The device stores nothing. It checks a write's PI as its payload's
//! flags ask before sending it down, and a read's PI after it came up when
//! `read_check` or the payload ask (the reference tags then are those of
//! the submitter's seed: the lower device's completion has mapped them
//! back). The lower device's errors are returned unchanged. Injections act
//! in flight: `fail` before anything goes down, `lost` and `misdirect` on
//! the way down, `corrupt ... write` corrupts a copy of the write on its way
//! down (never the submitter's buffers), and `corrupt ... persistent`
//! corrupts what a read brings up.
//!
//! With a write cache (`cache=1`), each write reads what it replaces from
//! the lower device before it goes down (the driver's own synchronous
//! I/O, data and metadata as stored), when no other cached write is down
//! (else it is retried later), and is logged; a power cut writes the
//! pre-images of the writes it loses back to the lower device and flushes
//! it.

use super::{
    cache::{Medium, Visit, WriteCache},
    short, Device,
};
use crate::{
    blk::{
        bio::{Access, Integrity, Sink},
        lower::{DeviceMd, Forward, Lower, SyncData},
        Bio, Op, Pending, Request, Status, REQ_ATOMIC, REQ_FUA,
    },
    inject::{Field, Range, ReadFaults, WriteClaim, WriteFault},
    pi::{Checks, Csum, Profile, TupleField, MAX_METADATA},
    stats::{Counter, Counts, Tally},
    store::{Slot, StoreError},
};
use kernel::prelude::*;

/// Bytes of data checksummed at a time.
const PIECE: usize = 512;

/// A pass-through device's lower device as the medium of its write cache:
/// read and written with the driver's own synchronous I/O, data and
/// metadata as stored.
pub(super) struct LowerMedium<'a> {
    pub(super) lower: &'a Lower,
    pub(super) profile: &'a Profile,
}

impl LowerMedium<'_> {
    /// The lower device's sector where interval `i` starts, and `i` as
    /// the reference tag seed (see [`Lower::sync_io`]).
    fn at(&self, i: u64) -> (u64, u64) {
        (i << (self.profile.interval_shift() - 9), i)
    }

    /// A buffer of `len` zeroed bytes.
    fn buffer(len: usize) -> Result<KVec<u8>, StoreError> {
        KVec::from_elem(0u8, len, GFP_KERNEL).map_err(|_| StoreError::NoMemory)
    }
}

impl Medium for LowerMedium<'_> {
    fn may_sleep(&self) -> bool {
        true
    }

    fn publish(&self) -> Result<(), StoreError> {
        // Every cached write sent down before has ended (see
        // `Device::log_down`).
        Ok(())
    }

    fn read_each(&self, first: u64, n: u64, f: &mut Visit<'_>) -> Result<(), StoreError> {
        let (iv, ms) = (self.profile.interval(), self.profile.metadata_size());
        let k = usize::try_from(n).map_err(|_| StoreError::Io)?;
        let mut data =
            KVVec::from_elem(0u8, k * iv, GFP_KERNEL).map_err(|_| StoreError::NoMemory)?;
        let mut md = Self::buffer(k * ms)?;
        let with_md = (ms > 0).then_some(&mut md);
        self.lower
            .sync_io(self.at(first), SyncData::Read(&mut data), with_md)
            .map_err(|_| StoreError::Io)?;
        for (j, d) in data.chunks(iv).enumerate() {
            let m = md.get(j * ms..(j + 1) * ms).ok_or(StoreError::Io)?;
            f(first + j as u64, d, m)?;
        }
        Ok(())
    }

    fn put(&self, i: u64, data: &[u8], meta: &[u8]) -> Result<(), StoreError> {
        // (The metadata must be in memory of a `KVec`'s: see `sync_io`.)
        let mut md = Self::buffer(meta.len())?;
        md.copy_from_slice(meta);
        let with_md = (!meta.is_empty()).then_some(&mut md);
        self.lower
            .sync_io(self.at(i), SyncData::Write(data), with_md)
            .map_err(|_| StoreError::Io)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.lower
            .sync_io((0, 0), SyncData::Write(&[]), None)
            .map_err(|_| StoreError::Io)
    }
}

/// How a request goes down to the lower device (see [`Device::plan_down`]).
struct Plan<'a> {
    /// The one-shot fault the write met, used up once it went down.
    claim: Option<WriteClaim<'a>>,
    /// Sectors the clones are moved by (a misdirected write).
    shift: i64,
    /// The field and intervals corrupted in a copy of the write.
    corrupt: Option<(Field, Range)>,
    /// Metadata of the device's own for a read (see [`Forward`]).
    device_md: Option<(u32, u32)>,
    /// End it in the lower device's completion (see [`Forward`]).
    end_direct: bool,
}

impl Device {
    /// Sends `rq` down to `lower`. Hands it back if it must be retried
    /// later (a shortage of clones; nothing was sent). Runs in the
    /// device's work item.
    pub(super) fn pass(&self, lower: &Lower, rq: Pending) -> Result<(), Pending> {
        let Some(wq) = &self.wq else {
            self.finish(rq, Err(Status::IO_ERROR));
            return Ok(());
        };
        let t = Tally::new();
        let cached = self.cache_for(rq.request().op());
        let plan = match self.plan_down(&rq.request(), &t) {
            Ok(Some(plan)) => plan,
            // Lost on the way down: the fault took effect.
            Ok(None) => {
                self.finish_counted(rq, Ok(()), &t);
                return Ok(());
            }
            Err(s) => {
                self.finish_counted(rq, Err(s), &t);
                return Ok(());
            }
        };
        if let Some(cache) = cached {
            match self.log_down(cache, lower, &rq.request(), plan.shift) {
                Ok(()) => {}
                Err(Status::RESOURCE) => {
                    self.stats.inc(Counter::Requeued);
                    return Err(rq);
                }
                Err(s) => {
                    self.finish_counted(rq, Err(s), &t);
                    return Ok(());
                }
            }
        }
        let how = Forward {
            wq,
            // A cached write ends in `lower_done`, which counts it out.
            end_direct: plan.end_direct && cached.is_none(),
            bounce: plan.corrupt.is_some(),
            shift: plan.shift,
            device_md: plan.device_md,
        };
        let fix = |clone: Bio<'_, Sink>, _src: Bio<'_>| {
            if let Some((field, range)) = plan.corrupt {
                // A copy of the device's own: corrupting it cannot fail but
                // for a payload shorter than its data, which the lower
                // device then rejects anyway.
                let _ = self.corrupt_bio(&clone, clone.integrity(), &t, |i, f| {
                    f == field && range.contains(i)
                });
            }
        };
        // On its way down: counted, and the fault met took effect, before
        // the request can end.
        let claim = plan.claim;
        let go = || {
            self.stats.commit(&t);
            if let Some(c) = claim {
                self.fault_took_effect(c);
            }
        };
        let started = lower.start(rq, &how, fix, go);
        if started.is_err() && cached.is_some() {
            self.down_ended();
        }
        match started {
            Ok(()) => Ok(()),
            // Nothing was sent: the claim goes back with the request, and
            // the retry counts it.
            Err((rq, e)) if e == ENOMEM => {
                self.stats.inc(Counter::Requeued);
                Err(rq)
            }
            Err((rq, _)) => {
                self.finish_counted(rq, Err(Status::IO_ERROR), &t);
                Ok(())
            }
        }
    }

    /// The write cache a request of `op` is logged in, if it is a write
    /// and the device has one; a flush, discard or write-zeroes makes
    /// every write that completed before it durable.
    fn cache_for(&self, op: Op) -> Option<&WriteCache> {
        let cache = self.cache.as_deref()?;
        match op {
            Op::Write => Some(cache),
            Op::Flush | Op::Discard | Op::SecureErase | Op::WriteZeroes => {
                cache.flush();
                None
            }
            Op::Read | Op::Other(_) => None,
        }
    }

    /// Logs write `r`, moved by `shift` sectors on its way down, in the
    /// write cache: reads what the intervals it goes to hold, and counts
    /// it as sent down (see [`Self::down_ended`]). Only when no cached
    /// write is down (so that the lower device holds what they wrote):
    /// else [`Status::RESOURCE`], and blk-mq retries it a little later (a
    /// work item waiting here could hold the worker the one down needs to
    /// end). The device's cached writes so go down one at a time.
    fn log_down(
        &self,
        cache: &WriteCache,
        lower: &Lower,
        r: &Request<'_>,
        shift: i64,
    ) -> Result<(), Status> {
        let p = &self.cfg.profile;
        let first = p.sector_to_interval(r.sector().wrapping_add_signed(shift));
        let n = self.intervals_in(u64::from(r.bytes()));
        let medium = LowerMedium { lower, profile: p };
        let (fua, atomic) = (r.has_flags(REQ_FUA), r.has_flags(REQ_ATOMIC));
        let mut down = self.down.lock();
        if *down > 0 {
            return Err(Status::RESOURCE);
        }
        // (In the work item, under `with_backing_io`.)
        cache.apply(&medium, (first, n), fua, atomic, |rec| {
            for i in first..first + n {
                rec.capture(i, &mut Slot::Gone);
            }
            Ok::<(), StoreError>(())
        })?;
        *down += 1;
        Ok(())
    }

    /// A cached write sent down has ended (or was not sent after all).
    fn down_ended(&self) {
        let mut down = self.down.lock();
        *down = down.saturating_sub(1);
    }

    /// Looks at `r` before it goes down (its range, the PI of a write as
    /// its payloads ask, the fault it meets), counting into `t`; says how
    /// it goes, or `None` for a write the fault met loses (the fault took
    /// effect).
    fn plan_down(&self, r: &Request<'_>, t: &Tally) -> Result<Option<Plan<'_>>, Status> {
        let op = r.op();
        let len = u64::from(r.bytes());
        let in_range = r
            .sector()
            .checked_mul(512)
            .and_then(|pos| pos.checked_add(len))
            .is_some_and(|end| end <= self.cfg.capacity);
        if op != Op::Flush && !in_range {
            return Err(Status::IO_ERROR);
        }
        let p = &self.cfg.profile;
        let first = p.sector_to_interval(r.sector());
        let n = self.intervals_in(len);
        let mut claim = None;
        match op {
            Op::Read => t.add(Counter::ReadIntervals, n),
            Op::Write => {
                r.bios().try_for_each(|bio| self.check_down(&bio, t))?;
                claim = self.inject.claim_write(first, n);
            }
            Op::Flush | Op::Discard | Op::SecureErase | Op::WriteZeroes => {}
            Op::Other(_) => return Err(Status::NOT_SUPPORTED),
        }
        // A fault met is used up once the write went down with it (see
        // `WriteClaim`); a write retried for a shortage meets it again.
        let (shift, corrupt) = match claim.as_ref().map(|c| c.fault()) {
            None => (0, None),
            Some(WriteFault::Lost) => {
                if let Some(c) = claim {
                    self.fault_took_effect(c);
                }
                return Ok(None);
            }
            Some(WriteFault::Misdirect(target)) => {
                if target
                    .checked_add(n)
                    .is_none_or(|end| end > self.nr_intervals())
                {
                    // It would land beyond the end of the device.
                    if let Some(c) = claim {
                        c.spend();
                    }
                    return Err(Status::IO_ERROR);
                }
                let sectors = (p.interval() >> 9) as i64;
                ((target as i64 - first as i64) * sectors, None)
            }
            Some(WriteFault::Corrupt(field, range)) => (0, Some((field, range))),
        };
        Ok(Some(Plan {
            claim,
            shift,
            corrupt,
            // The device checks reads that bring no payload up with
            // metadata of its own.
            device_md: (op == Op::Read && self.cfg.read_check && p.csum() != Csum::None)
                .then(|| (p.metadata_size() as u32, p.interval_shift())),
            // What needs no work on the way up ends in the lower device's
            // completion, without a second trip through the workqueue.
            end_direct: op != Op::Read || self.read_is_plain(r, first, n),
        }))
    }

    /// Whether a read of `n` intervals at `first` brings up what needs
    /// neither a check nor an injected corruption (see [`Self::check_up`]).
    fn read_is_plain(&self, r: &crate::blk::Request<'_>, first: u64, n: u64) -> bool {
        let p = &self.cfg.profile;
        if p.csum() == Csum::None || !p.has_metadata() {
            return self.inject.read_faults(first, n).is_empty();
        }
        // Without a payload, `read_check` alone decides (the device then
        // reads metadata of its own).
        self.inject.read_faults(first, n).is_empty()
            && r.bios()
                .all(|bio| self.read_checks(bio.integrity().as_ref()) == Checks::NONE)
    }

    /// Checks the PI of a bio on its way down, as its payload's flags ask.
    fn check_down(&self, bio: &Bio<'_>, t: &Tally) -> Result<(), Status> {
        let p = &self.cfg.profile;
        let Some(b) = bio
            .integrity()
            .filter(|_| p.has_metadata() && p.csum() != Csum::None)
        else {
            return Ok(());
        };
        if b.flags() & crate::blk::bip::CHECK_FLAGS == 0 {
            return Ok(());
        }
        let checks = Checks::from_bip(b.flags(), b.app_tag());
        let (first, n) = self.interval_span(bio);
        t.add(Counter::CheckedWrite, n);
        // The tuples carry the device's own reference tags by now (the
        // block layer mapped them when the request started).
        let mut cur = self.payload_cursor(&b, n)?;
        self.verify_bio(
            bio,
            |md| cur.copy_to(md).map_err(short),
            checks,
            first,
            n,
            true,
        )
    }

    /// Checks the intervals of `bio` against their metadata, which
    /// `next_md` fills in, one interval after the other: interval `k` of
    /// the bio has reference `base + k`.
    fn verify_bio<A: Access>(
        &self,
        bio: &Bio<'_, A>,
        mut next_md: impl FnMut(&mut [u8]) -> Result<(), Status>,
        checks: Checks,
        base: u64,
        n: u64,
        write: bool,
    ) -> Result<(), Status> {
        // Checksums over whole bios run in work items, never in a lower
        // device's completion (which may be in interrupt context).
        kernel::task::might_sleep();
        let p = &self.cfg.profile;
        let iv = p.interval();
        let mut data = bio.data_source();
        let mut md_buf = [0u8; MAX_METADATA];
        let md = &mut md_buf[..p.metadata_size()];
        let mut piece = [0u8; PIECE];
        for k in 0..n {
            next_md(md)?;
            let tuple = p.read_tuple(md).ok_or(Status::IO_ERROR)?;
            if p.is_escape(&tuple) {
                data.skip(iv).map_err(short)?;
                continue;
            }
            let mut g = 0;
            if checks.guard {
                let mut guard = p.guard();
                for _ in 0..iv / PIECE {
                    data.copy_to(&mut piece).map_err(short)?;
                    guard.update(&piece);
                }
                g = p.finish_guard(guard, md);
            } else {
                data.skip(iv).map_err(short)?;
            }
            p.check(&tuple, g, base.wrapping_add(k), checks)
                .map_err(|e| self.count(e, write))?;
        }
        Ok(())
    }

    /// Spoils, in place, each field `f` of each interval `i` of `bio`
    /// (data, and metadata in payload `b`) for which `what(i, f)`.
    fn corrupt_bio(
        &self,
        bio: &Bio<'_, Sink>,
        b: Option<Integrity<'_, Sink>>,
        t: &Tally,
        what: impl Fn(u64, Field) -> bool,
    ) -> Result<(), Status> {
        // As in `verify_bio`: in work items only.
        kernel::task::might_sleep();
        let p = &self.cfg.profile;
        let iv = p.interval();
        let (first, n) = self.interval_span(bio);
        let (mut src, mut dst) = (bio.data_source(), bio.data_dest());
        let mut md_in = b.map(|b| self.payload_cursor(&b, n)).transpose()?;
        let mut md_out = b.map(|b| self.payload_cursor(&b, n)).transpose()?;
        let mut md_buf = [0u8; MAX_METADATA];
        let md = &mut md_buf[..p.metadata_size()];
        for i in first..first + n {
            let mut corrupted = what(i, Field::Data);
            if corrupted {
                let mut b0 = [0u8];
                src.copy_to(&mut b0).map_err(short)?;
                b0[0] ^= 0xff;
                dst.copy_from(&b0).map_err(short)?;
                src.skip(iv - 1).map_err(short)?;
                dst.skip(iv - 1).map_err(short)?;
            } else {
                src.skip(iv).map_err(short)?;
                dst.skip(iv).map_err(short)?;
            }
            if let (Some(mi), Some(mo)) = (md_in.as_mut(), md_out.as_mut()) {
                mi.copy_to(md).map_err(short)?;
                corrupted |= self.corrupt_tuple(md, i, &what);
                mo.copy_from(md).map_err(short)?;
            }
            if corrupted {
                t.inc(Counter::InjCorrupt);
            }
        }
        Ok(())
    }

    /// Spoils the fields `f` of the PI tuple in `md`, interval `i`'s
    /// metadata, for which `what(i, f)`; returns whether any changed.
    fn corrupt_tuple(&self, md: &mut [u8], i: u64, what: impl Fn(u64, Field) -> bool) -> bool {
        let mut corrupted = false;
        for t in [TupleField::Guard, TupleField::Ref, TupleField::App] {
            if what(i, Field::Tuple(t)) {
                corrupted |= self.cfg.profile.corrupt(md, t);
            }
        }
        corrupted
    }

    /// A forwarded request came back with `status` from the lower device;
    /// `device_md` is the metadata of the device's own a read without payload
    /// brought up (see [`Self::pass`]). Runs in a work item, so that the
    /// checks of a read run in process context and the request ends
    /// outside the lower device's completion.
    pub(crate) fn lower_done(
        &self,
        rq: Pending,
        status: Result<(), Status>,
        mut device_md: Option<DeviceMd>,
    ) {
        let t = Tally::new();
        if self.cache.is_some() && rq.request().op() == Op::Write {
            self.down_ended();
        }
        let result = status.and_then(|()| {
            let r = rq.request();
            if r.op() != Op::Read {
                return Ok(());
            }
            let mut device_md = device_md.as_mut().map(|o| o.as_mut_slice());
            r.read_bios()
                .ok_or(Status::IO_ERROR)?
                .try_for_each(|bio| self.check_up(&bio, &mut device_md, &t))
        });
        self.finish_counted(rq, result, &t);
    }

    /// Spoils what a read bio brings up as the persistent corruptions
    /// say, then checks it if `read_check` or its payload ask. A bio
    /// without payload is checked against the front of `device_md`, the
    /// device's own metadata, if the device asked for it.
    fn check_up(
        &self,
        bio: &Bio<'_, Sink>,
        device_md: &mut Option<&mut [u8]>,
        t: &Tally,
    ) -> Result<(), Status> {
        let p = &self.cfg.profile;
        let (first, n) = self.interval_span(bio);
        let bip = bio.integrity().filter(|_| p.has_metadata());
        let faults: ReadFaults = self.inject.read_faults(first, n);
        let corrupts = |i, f| faults.at(i).any(|g| g == f);
        if !faults.is_empty() {
            self.corrupt_bio(bio, bip, t, corrupts)?;
        }
        if bip.is_none() {
            let ms = p.metadata_size();
            let Some(all) = device_md.take() else {
                return Ok(());
            };
            let len = usize::try_from(n).map_err(|_| Status::IO_ERROR)? * ms;
            if all.len() < len {
                return Err(Status::IO_ERROR);
            }
            let (mine, rest) = all.split_at_mut(len);
            *device_md = Some(rest);
            // The persistent tuple corruptions, in the device's copy.
            for (i, md) in (first..).zip(mine.chunks_exact_mut(ms)) {
                if self.corrupt_tuple(md, i, corrupts) {
                    t.inc(Counter::InjCorrupt);
                }
            }
            t.add(Counter::CheckedRead, n);
            let mut mds = mine.chunks_exact(ms);
            let next = |md: &mut [u8]| {
                md.copy_from_slice(mds.next().ok_or(Status::IO_ERROR)?);
                Ok(())
            };
            // Seeded with the interval numbers: the device's own tags.
            return self.verify_bio(bio, next, Checks::DEVICE, first, n, false);
        }
        let Some(b) = bip.filter(|_| p.csum() != Csum::None) else {
            return Ok(());
        };
        let checks = self.read_checks(Some(&b));
        if checks == Checks::NONE {
            return Ok(());
        }
        t.add(Counter::CheckedRead, n);
        // The lower device's completion mapped the reference tags back to
        // the payload's seed.
        let mut cur = self.payload_cursor(&b, n)?;
        self.verify_bio(
            bio,
            |md| cur.copy_to(md).map_err(short),
            checks,
            b.seed(),
            n,
            false,
        )
    }
}
