// SPDX-License-Identifier: GPL-2.0

//! The read path: data and, if asked, the stored metadata; the device's
//! own checks (`read_check`, and what a submitter's payload asks for) run
//! over the stored bytes as they are copied out, under the store's lock.

use super::{short, Device};
use crate::{
    blk::{bio::Sink, Bio, Request, Status},
    inject::Field,
    pi::{Checks, Csum, MAX_METADATA},
    stats::{Counter, Counts},
};

impl Device {
    /// Serves a read request whole from a memory store, in a format
    /// without metadata, when no injected fault applies: its data only,
    /// with nothing to look at per bio. Returns `false` (having done
    /// nothing) for any other read.
    pub(super) fn read_plain(&self, rq: &Request<'_>, t: &impl Counts) -> Result<bool, Status> {
        let p = &self.cfg.profile;
        if p.has_metadata() || !self.store.is_memory() {
            return Ok(false);
        }
        let first = p.sector_to_interval(rq.sector());
        let n = self.intervals_in(rq.bytes().into());
        if !self.inject.read_faults(first, n).is_empty() {
            return Ok(false);
        }
        t.add(Counter::ReadIntervals, n);
        let mut data = rq.data_dest().ok_or(Status::IO_ERROR)?;
        self.store
            .read(first, n, false, |_, d, _| data.copy_from(d).map_err(short))?;
        Ok(true)
    }

    /// Handles one bio of a read request.
    pub(super) fn read_bio(&self, bio: Bio<'_, Sink>, t: &impl Counts) -> Result<(), Status> {
        let p = &self.cfg.profile;
        let (first, n) = self.interval_span(&bio);
        let mut data = bio.data_dest();
        let faults = self.inject.read_faults(first, n);
        t.add(Counter::ReadIntervals, n);
        let bip = bio.integrity().filter(|_| p.has_metadata());
        let mut md_cur = bip.map(|b| self.payload_cursor(&b, n)).transpose()?;
        let checks = self.read_checks(bip.as_ref());
        let check = checks != Checks::NONE && p.csum() != Csum::None && p.has_metadata();
        if check {
            t.add(Counter::CheckedRead, n);
        }
        // Without a payload, checks or injected faults, the metadata is
        // not even looked at.
        let with_meta = p.has_metadata() && (md_cur.is_some() || check || !faults.is_empty());
        if !with_meta && faults.is_empty() {
            // A backing file reads straight into the bio's pages.
            return Ok(self.store.read_bio(first, &bio)?);
        }
        let mut escapes = 0;
        let mut md_buf = [0u8; MAX_METADATA];
        let md = &mut md_buf[..p.metadata_size()];
        self.store.read(first, n, with_meta, |i, d, m| {
            let tuple = if with_meta {
                md.copy_from_slice(m);
                if self.corrupt_metadata(i, md, &faults) {
                    t.inc(Counter::InjCorrupt);
                }
                p.read_tuple(md)
            } else {
                None
            };
            let escape = tuple.as_ref().is_some_and(|t| p.is_escape(t));
            escapes += u64::from(escape);
            // An escape tuple needs no checksum of the data.
            let verify = check && tuple.is_some() && !escape;
            let sum = verify && checks.guard;
            let mut guard = p.guard();
            let corrupted = faults.at(i).any(|f| f == Field::Data);
            match d.split_first() {
                Some((b0, rest)) if corrupted => {
                    // An injected data corruption: the first byte's bits
                    // flipped on the way out.
                    let b0 = [b0 ^ 0xff];
                    data.copy_from(&b0).map_err(short)?;
                    data.copy_from(rest).map_err(short)?;
                    if sum {
                        guard.update(&b0);
                        guard.update(rest);
                    }
                    t.inc(Counter::InjCorrupt);
                }
                _ => {
                    data.copy_from(d).map_err(short)?;
                    if sum {
                        guard.update(d);
                    }
                }
            }
            if let (true, Some(t)) = (verify, &tuple) {
                let g = if sum { p.finish_guard(guard, md) } else { 0 };
                p.check(t, g, i, checks).map_err(|e| self.count(e, false))?;
            }
            if let Some(c) = md_cur.as_mut() {
                c.copy_from(md).map_err(short)?;
            }
            Ok::<(), Status>(())
        })?;
        t.add(Counter::EscapeRead, escapes);
        Ok(())
    }
}
