//! Sources fill a [`crate::store::Store`]. Only the folder source exists so far; a kube source
//! (watchers) will fill the same store.

pub mod files;
