//! Containers shared between snapshots: a change copies only the part it touches.
//!
//! Contract: [`Chunked`] (slot-indexed records) and [`Sharded`] (hash maps)
//! are cheap to clone: a clone copies a vector of `Arc`s, not the entries.
//! A write copies the one chunk or shard it lands in (copy on write through
//! `Arc::make_mut`), so a snapshot never changes once published and a change
//! of one record costs one chunk or shard ([`CHUNK`] records, about
//! 1/[`SHARDS`] of a map), not the table. Reads are one extra indirection.

use hashbrown::HashMap;
use std::hash::Hash;
use std::sync::Arc;

/// Log2 of the records per chunk.
const CHUNK_BITS: u32 = 10;
/// Records per chunk.
pub const CHUNK: usize = 1 << CHUNK_BITS;
/// Shards of a [`Sharded`] map.
pub const SHARDS: usize = 1024;

/// A vector indexed by slot, in shared chunks.
#[derive(Debug, Clone)]
pub struct Chunked<T> {
    chunks: Vec<Arc<Vec<Option<T>>>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked { chunks: Vec::new(), len: 0 }
    }
}

impl<T: Clone> Chunked<T> {
    /// The value in `slot`.
    #[inline]
    pub fn get(&self, slot: u32) -> Option<&T> {
        let s = slot as usize;
        self.chunks.get(s >> CHUNK_BITS)?.get(s & (CHUNK - 1))?.as_ref()
    }

    /// Put `v` in `slot` (copying its chunk if a snapshot shares it).
    pub fn set(&mut self, slot: u32, v: Option<T>) {
        let s = slot as usize;
        let c = s >> CHUNK_BITS;
        if c >= self.chunks.len() {
            if v.is_none() {
                return;
            }
            self.chunks.resize_with(c + 1, || Arc::new(vec![None; CHUNK]));
        }
        if let Some(e) = Arc::make_mut(&mut self.chunks[c]).get_mut(s & (CHUNK - 1)) {
            self.len = self.len + usize::from(v.is_some()) - usize::from(e.is_some());
            *e = v;
        }
    }

    /// Values in use.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no slot holds a value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every value, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flat_map(|c| c.iter().flatten())
    }

    /// Bytes held (chunks at full size).
    pub fn bytes(&self) -> usize {
        self.chunks.len() * (CHUNK * std::mem::size_of::<Option<T>>() + 16) + self.chunks.capacity() * 8
    }
}

/// Which shard a key lives in.
pub trait ShardKey {
    /// A well-mixed number; the shard is its top bits.
    fn mix(&self) -> u64;
}

/// A hash map split into [`SHARDS`] shared shards.
#[derive(Debug, Clone)]
pub struct Sharded<K, V> {
    shards: Vec<Arc<HashMap<K, V>>>,
}

impl<K, V> Default for Sharded<K, V> {
    fn default() -> Self {
        Sharded { shards: (0..SHARDS).map(|_| Arc::new(HashMap::new())).collect() }
    }
}

#[inline]
fn shard_of(mix: u64) -> usize {
    (mix.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SHARDS.trailing_zeros())) as usize
}

impl<K: ShardKey + Hash + Eq + Clone, V: Clone> Sharded<K, V> {
    /// The value of `k`.
    #[inline]
    pub fn get(&self, k: &K) -> Option<&V> {
        self.shards.get(shard_of(k.mix()))?.get(k)
    }

    fn shard_mut(&mut self, k: &K) -> Option<&mut HashMap<K, V>> {
        self.shards.get_mut(shard_of(k.mix())).map(Arc::make_mut)
    }

    /// Insert or overwrite.
    pub fn insert(&mut self, k: K, v: V) {
        if let Some(s) = self.shard_mut(&k) {
            s.insert(k, v);
        }
    }

    /// Insert unless present.
    pub fn insert_if_absent(&mut self, k: K, v: V) {
        if let Some(s) = self.shard_mut(&k) {
            s.entry(k).or_insert(v);
        }
    }

    /// Remove `k`.
    pub fn remove(&mut self, k: &K) -> Option<V> {
        self.shard_mut(k)?.remove(k)
    }

    /// Entries.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.is_empty())
    }

    /// Bytes held by the tables (buckets of key, value and control byte).
    pub fn bytes(&self) -> usize {
        self.shards.iter().map(|s| s.capacity() * (std::mem::size_of::<(K, V)>() + 1) + 64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl ShardKey for u32 {
        fn mix(&self) -> u64 {
            u64::from(*self)
        }
    }

    #[test]
    fn a_write_after_a_clone_leaves_the_clone_as_it_was() {
        let mut a: Chunked<u32> = Chunked::default();
        let mut m: Sharded<u32, u32> = Sharded::default();
        for i in 0..5000 {
            a.set(i, Some(i));
            m.insert(i, i);
        }
        let (b, n) = (a.clone(), m.clone());
        a.set(7, None);
        a.set(4000, Some(1));
        m.remove(&7);
        m.insert(4000, 1);
        assert_eq!((b.get(7), b.get(4000), a.get(7), a.get(4000)), (Some(&7), Some(&4000), None, Some(&1)));
        assert_eq!((n.get(&7), n.get(&4000), m.get(&7), m.get(&4000)), (Some(&7), Some(&4000), None, Some(&1)));
        assert_eq!((a.len(), b.len(), m.len(), n.len()), (4999, 5000, 4999, 5000));
        assert_eq!(a.iter().count(), 4999);
        a.set(1 << 20, None);
        assert_eq!(a.get(1 << 20), None, "clearing a slot past the end allocates nothing");
    }
}
