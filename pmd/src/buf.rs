//! The packet-buffer contract shared by the datapath and the I/O layer.
//!
//! A [`PacketBuf`] owns one frame (no FCS) in one contiguous segment with
//! headroom in front, so encapsulation prepends in place. Dropping a buffer
//! returns it to its pool. No method panics.

/// Headroom kept in front of every [`HeapBuf`], like DPDK's `RTE_PKTMBUF_HEADROOM`.
pub const HEADROOM: usize = 128;

/// One owned frame with headroom.
pub trait PacketBuf: Sized {
    /// The frame bytes.
    fn data(&self) -> &[u8];
    /// The frame bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Frame length in bytes.
    fn len(&self) -> usize {
        self.data().len()
    }
    /// True when the frame is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Grow the frame by `n` bytes at the front; `None` (and no change) if the headroom is too small.
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Remove `n` bytes from the front; false (and no change) if the frame is shorter.
    fn adj(&mut self, n: usize) -> bool;
    /// Remove `n` bytes from the end; false (and no change) if the frame is shorter.
    fn trim(&mut self, n: usize) -> bool;
    /// Grow the frame by `n` bytes at the end; `None` if the tailroom is too small.
    fn append(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Copy the frame into a new buffer from the same pool; `None` when the pool is empty.
    fn try_clone(&self) -> Option<Self>;
    /// False when the frame spans several segments (the datapath drops those).
    fn is_contiguous(&self) -> bool {
        true
    }
}

/// A heap-backed [`PacketBuf`] for tests, benches and fuzzing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeapBuf {
    storage: Vec<u8>,
    start: usize,
    end: usize,
}

/// Largest frame a [`HeapBuf`] holds after its headroom.
pub const HEAP_BUF_ROOM: usize = 2048;

impl HeapBuf {
    /// A buffer holding a copy of `frame` (truncated to [`HEAP_BUF_ROOM`]).
    pub fn from_slice(frame: &[u8]) -> Self {
        let len = frame.len().min(HEAP_BUF_ROOM);
        let mut storage = vec![0u8; HEADROOM + HEAP_BUF_ROOM];
        storage[HEADROOM..HEADROOM + len].copy_from_slice(&frame[..len]);
        HeapBuf { storage, start: HEADROOM, end: HEADROOM + len }
    }

    /// Bytes free in front of the frame.
    pub fn headroom(&self) -> usize {
        self.start
    }
}

impl PacketBuf for HeapBuf {
    fn data(&self) -> &[u8] {
        &self.storage[self.start..self.end]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.end]
    }
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.start {
            return None;
        }
        self.start -= n;
        Some(self.data_mut())
    }
    fn adj(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.start += n;
        true
    }
    fn trim(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.end -= n;
        true
    }
    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if self.end + n > self.storage.len() {
            return None;
        }
        self.end += n;
        Some(self.data_mut())
    }
    fn try_clone(&self) -> Option<Self> {
        Some(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_adj_trim_append() {
        let mut b = HeapBuf::from_slice(&[1, 2, 3, 4]);
        assert_eq!(b.prepend(2).map(|d| d.len()), Some(6));
        b.data_mut()[..2].copy_from_slice(&[9, 9]);
        assert_eq!(b.data(), &[9, 9, 1, 2, 3, 4]);
        assert!(b.adj(2));
        assert!(b.trim(1));
        assert_eq!(b.data(), &[1, 2, 3]);
        assert!(b.append(1).is_some());
        assert_eq!(b.len(), 4);
        assert!(!b.adj(5));
        assert!(!b.trim(5));
        assert!(b.prepend(HEADROOM + 1).is_none());
        assert_eq!(b.len(), 4);
    }
}
