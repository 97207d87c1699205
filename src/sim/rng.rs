//! A tiny deterministic random number generator.
//!
//! SplitMix64 is fully specified, so a seed yields the same data on every
//! platform and with every version of our dependencies (a `rand` upgrade
//! could otherwise change every generated record). Records are generated
//! from `(seed, stream, index)`, never from one long sequence, so any record
//! can be re-rendered on its own, in any order.

/// Streams keep independent decisions independent: the content of record
/// `i` does not change when, say, the lateness rule changes.
pub(crate) const STREAM_CONTENT: u64 = 1;
pub(crate) const STREAM_ID: u64 = 2;
pub(crate) const STREAM_VISIBILITY: u64 = 3;
pub(crate) const STREAM_SELF: u64 = 4;
pub(crate) const STREAM_REQUEST: u64 = 5;
pub(crate) const STREAM_ENTITY: u64 = 6;

#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

/// The SplitMix64 finalizer: a good 64-bit mixing function.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A well-mixed hash of three words.
pub(crate) fn hash3(a: u64, b: u64, c: u64) -> u64 {
    mix(mix(mix(a ^ 0x51_7CC1_B727_220A) ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15)) ^ c)
}

/// FNV-1a of a string, to turn a name into a stream key.
pub(crate) fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Rng {
    #[cfg(test)]
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(mix(seed))
    }

    /// The generator for one record (or entity) of one stream.
    pub(crate) fn for_item(seed: u64, stream: u64, index: u64) -> Rng {
        Rng(hash3(seed, stream, index))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift (bias is negligible).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub(crate) fn pick_str<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_streams_differ() {
        let a: Vec<u64> = (0..5).map(|_| Rng::new(7).next_u64()).collect();
        assert!(a.iter().all(|x| *x == a[0]));
        let mut r1 = Rng::for_item(7, STREAM_CONTENT, 3);
        let mut r2 = Rng::for_item(7, STREAM_CONTENT, 3);
        let mut r3 = Rng::for_item(7, STREAM_ID, 3);
        let (x1, x2, x3) = (r1.next_u64(), r2.next_u64(), r3.next_u64());
        assert_eq!(x1, x2);
        assert_ne!(x1, x3);
    }

    #[test]
    fn below_and_between_stay_in_range() {
        let mut r = Rng::new(1);
        let mut seen = [false; 6];
        for _ in 0..10_000 {
            let v = r.below(6) as usize;
            seen[v] = true;
            let b = r.between(-3, 3);
            assert!((-3..=3).contains(&b));
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert!(seen.iter().all(|s| *s), "every value of below(6) occurs");
    }
}
