//! Seeded Gaussian noise: AudioLDM2's initial latents, and test and
//! benchmark signals in every stage.
//!
//! The generator is written out here rather than taken from a distribution
//! crate so that it never changes under an upgrade (the background cache
//! and anyone reproducing a background rely on a seed meaning the same
//! noise) and can be re-implemented elsewhere in a few lines:
//!
//! - `rand_chacha::ChaCha8Rng::seed_from_u64(seed)` (ChaCha with 8 rounds;
//!   the crate guarantees this stream is stable across versions);
//! - each pair of `next_u64()` values `a, b` gives two uniform numbers
//!   `u1 = 1 - (a >> 11) / 2^53` in (0, 1] and `u2 = (b >> 11) / 2^53`;
//! - Box–Muller: `r = sqrt(-2 ln u1)`, values `r cos(2π u2)` and
//!   `r sin(2π u2)`, computed in f64 and rounded to f32, in that order,
//!   filling the output in order.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// `count` standard normal values from `seed`, as documented above (the
/// stream never changes).
pub fn gaussian(seed: u64, count: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let scale = 1.0 / (1u64 << 53) as f64;
    let mut out = Vec::with_capacity(count + 1);
    while out.len() < count {
        let u1 = 1.0 - (rng.next_u64() >> 11) as f64 * scale;
        let u2 = (rng.next_u64() >> 11) as f64 * scale;
        let r = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        out.push((r * angle.cos()) as f32);
        out.push((r * angle.sin()) as f32);
    }
    out.truncate(count);
    out
}
