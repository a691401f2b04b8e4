//! Short header values without an allocation each.
//!
//! A response's `X-Amzn-Trace-Id` is about 40 bytes, written once per request. Allocating
//! each on its own costs a `malloc` and a `free` per request; instead each thread writes them
//! one after the other into a chunk of [`CHUNK`] bytes and hands out shared views of it
//! ([`Bytes`] with a reference count), so one allocation serves about fifty values. A chunk
//! is freed when the last value cut from it is dropped: a value kept for long keeps its chunk.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};

/// Bytes per chunk.
pub(crate) const CHUNK: usize = 2048;

thread_local! {
    static CURRENT: RefCell<Option<BytesMut>> = const { RefCell::new(None) };
}

/// `src` as [`Bytes`], cut from this thread's current chunk. Values longer than a quarter of a
/// chunk, and calls made while the thread is exiting, get an allocation of their own.
pub(crate) fn small_bytes(src: &[u8]) -> Bytes {
    if src.len() > CHUNK / 4 {
        return Bytes::copy_from_slice(src);
    }
    CURRENT
        .try_with(|chunk| {
            let mut chunk = chunk.borrow_mut();
            let chunk = match &mut *chunk {
                Some(c) if c.capacity() - c.len() >= src.len() => c,
                slot => slot.insert(BytesMut::with_capacity(CHUNK)),
            };
            chunk.extend_from_slice(src);
            chunk.split().freeze()
        })
        .unwrap_or_else(|_| Bytes::copy_from_slice(src))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_bytes_across_chunks() {
        // Enough values to fill several chunks; each must still read back as written.
        let values: Vec<(String, Bytes)> = (0..500)
            .map(|i| {
                let s = format!("Root=1-5759e988-{i:024x}");
                let b = small_bytes(s.as_bytes());
                (s, b)
            })
            .collect();
        for (s, b) in &values {
            assert_eq!(&b[..], s.as_bytes());
        }
    }

    #[test]
    fn long_values_are_copied_whole() {
        let long = vec![b'a'; CHUNK];
        assert_eq!(&small_bytes(&long)[..], &long[..]);
        assert_eq!(&small_bytes(b"")[..], b"");
    }
}
