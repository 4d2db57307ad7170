// SPDX-License-Identifier: GPL-2.0

//! Where a device keeps its data and its metadata: two separate stores.

pub(crate) mod mem;

pub(crate) use mem::{DataStore, MetaStore};
