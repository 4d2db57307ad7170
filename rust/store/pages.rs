// SPDX-License-Identifier: GPL-2.0

//! Page arithmetic of accesses to a backing file.

/// A position in each page that `start..end` covers only in part: its
/// first page unless `start` is page aligned, its last unless `end` is
/// (each page once).
pub(crate) fn partial_pages(start: u64, end: u64) -> impl Iterator<Item = u64> {
    const PAGE: u64 = kernel::page::PAGE_SIZE as u64;
    if start >= end {
        return None.into_iter().chain(None);
    }
    let head = (start % PAGE != 0).then_some(start);
    let one_page = start / PAGE == (end - 1) / PAGE;
    let tail = (end % PAGE != 0 && !(head.is_some() && one_page)).then(|| end - 1);
    head.into_iter().chain(tail)
}
