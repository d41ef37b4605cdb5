//! A 1 KiB Argon2 block as 64 wasm vectors, and the compression G over it.
//!
//! Word `2k` of the block is lane 0 of vector `k`, word `2k + 1` its lane 1.
//! G (RFC 9106 §3.5) XORs two blocks into R, applies the BLAKE2b-based
//! permutation P to each row of eight vectors and then to each column, and
//! XORs the result with R. A row of 16 words is eight vectors; a "column" is
//! the vectors `c, c + 8, …, c + 56`. In a round of P the first four
//! G-mixes run on whole vectors; the diagonal four after a lane rotation.

use core::arch::wasm32::{
    i8x16_shuffle, i32x4_shuffle, i64x2_add, i64x2_shuffle, u64x2, u64x2_extmul_high_u32x4,
    u64x2_extmul_low_u32x4, u64x2_extract_lane, u64x2_shr, v128, v128_or, v128_xor,
};

#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Block(pub(crate) [v128; 64]);

impl Block {
    pub(crate) const SIZE: usize = 1024;
    pub(crate) const ZERO: Block = Block([u64x2(0, 0); 64]);

    /// The block whose little-endian bytes are `bytes`.
    pub(crate) fn from_bytes(bytes: &[u8; Self::SIZE]) -> Block {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[8 * i..8 * i + 8]);
            u64::from_le_bytes(w)
        };
        Block(core::array::from_fn(|k| {
            u64x2(word(2 * k), word(2 * k + 1))
        }))
    }

    /// Writes the block's little-endian bytes.
    pub(crate) fn write_bytes(&self, bytes: &mut [u8; Self::SIZE]) {
        for (k, v) in self.0.iter().enumerate() {
            bytes[16 * k..16 * k + 8].copy_from_slice(&u64x2_extract_lane::<0>(*v).to_le_bytes());
            bytes[16 * k + 8..16 * k + 16]
                .copy_from_slice(&u64x2_extract_lane::<1>(*v).to_le_bytes());
        }
    }

    /// Word `i` (0..128).
    pub(crate) fn word(&self, i: usize) -> u64 {
        let v = self.0[i / 2];
        if i.is_multiple_of(2) {
            u64x2_extract_lane::<0>(v)
        } else {
            u64x2_extract_lane::<1>(v)
        }
    }

    /// Sets the first words to `words`, leaving the rest as they are.
    pub(crate) fn set_words(&mut self, words: &[u64]) {
        for (k, pair) in words.chunks(2).enumerate() {
            self.0[k] = u64x2(pair[0], pair.get(1).copied().unwrap_or(0));
        }
    }

    /// Adds one to word `i`.
    pub(crate) fn increment_word(&mut self, i: usize) {
        let (lo, hi) = (self.word(i & !1), self.word(i | 1));
        self.0[i / 2] = if i.is_multiple_of(2) {
            u64x2(lo.wrapping_add(1), hi)
        } else {
            u64x2(lo, hi.wrapping_add(1))
        };
    }

    pub(crate) fn xor_assign(&mut self, other: &Block) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = v128_xor(*a, *b);
        }
    }

    /// G(`x`, `y`) into `out`, or XORed into `out` when `xor_into` (later
    /// passes of version 0x13).
    pub(crate) fn compress_into(x: &Block, y: &Block, out: &mut Block, xor_into: bool) {
        let mut q: [v128; 64] = core::array::from_fn(|k| v128_xor(x.0[k], y.0[k]));
        for row in 0..8 {
            let b = 8 * row;
            round(&mut q, [b, b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7]);
        }
        for c in 0..8 {
            round(
                &mut q,
                [c, c + 8, c + 16, c + 24, c + 32, c + 40, c + 48, c + 56],
            );
        }
        // R is recomputed from the inputs rather than kept: a copy of it would
        // cost more than the 128 loads.
        // Iterate by reference: an array moved into an iterator is copied, and
        // a 1 KiB copy in a guest is a `memory.copy` call into the host.
        let inputs = x.0.iter().zip(y.0.iter());
        for ((o, q), (x, y)) in out.0.iter_mut().zip(q.iter()).zip(inputs) {
            let z = v128_xor(*q, v128_xor(*x, *y));
            *o = if xor_into { v128_xor(*o, z) } else { z };
        }
    }
}

/// a + b + 2·lo32(a)·lo32(b) in each 64-bit lane (BLAKE2b's addition with
/// Argon2's multiplication), for two pairs at once: gathering the four low
/// halves into one vector lets the two widening multiplies share the
/// shuffles.
#[inline(always)]
fn fblamka2(a: [v128; 2], b: [v128; 2]) -> [v128; 2] {
    let lo_a = i32x4_shuffle::<0, 2, 4, 6>(a[0], a[1]);
    let lo_b = i32x4_shuffle::<0, 2, 4, 6>(b[0], b[1]);
    let p0 = u64x2_extmul_low_u32x4(lo_a, lo_b);
    let p1 = u64x2_extmul_high_u32x4(lo_a, lo_b);
    [
        i64x2_add(i64x2_add(a[0], b[0]), i64x2_add(p0, p0)),
        i64x2_add(i64x2_add(a[1], b[1]), i64x2_add(p1, p1)),
    ]
}

#[inline(always)]
fn each(x: [v128; 2], f: impl Fn(v128) -> v128) -> [v128; 2] {
    [f(x[0]), f(x[1])]
}

#[inline(always)]
fn xor2(x: [v128; 2], y: [v128; 2]) -> [v128; 2] {
    [v128_xor(x[0], y[0]), v128_xor(x[1], y[1])]
}

#[inline(always)]
fn rotr32(x: v128) -> v128 {
    i32x4_shuffle::<1, 0, 3, 2>(x, x)
}

#[inline(always)]
fn rotr24(x: v128) -> v128 {
    i8x16_shuffle::<3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10>(x, x)
}

#[inline(always)]
fn rotr16(x: v128) -> v128 {
    i8x16_shuffle::<2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9>(x, x)
}

#[inline(always)]
fn rotr63(x: v128) -> v128 {
    v128_or(u64x2_shr(x, 63), i64x2_add(x, x))
}

/// BLAKE2b's G on four columns at once: two vectors of two lanes each.
#[inline(always)]
fn mix(a: &mut [v128; 2], b: &mut [v128; 2], c: &mut [v128; 2], d: &mut [v128; 2]) {
    *a = fblamka2(*a, *b);
    *d = each(xor2(*d, *a), rotr32);
    *c = fblamka2(*c, *d);
    *b = each(xor2(*b, *c), rotr24);
    *a = fblamka2(*a, *b);
    *d = each(xor2(*d, *a), rotr16);
    *c = fblamka2(*c, *d);
    *b = each(xor2(*b, *c), rotr63);
}

/// One round of P over the 16 words in the vectors at `at`, in the order
/// (v0 v1) (v2 v3) … (v14 v15).
#[inline(always)]
fn round(q: &mut [v128; 64], at: [usize; 8]) {
    let [a0, a1, b0, b1, c0, c1, d0, d1] = at.map(|i| q[i]);

    // Columns: G(v0,v4,v8,v12) G(v1,v5,v9,v13) | G(v2,v6,v10,v14) G(v3,v7,v11,v15).
    let (mut a, mut b, mut c, mut d) = ([a0, a1], [b0, b1], [c0, c1], [d0, d1]);
    mix(&mut a, &mut b, &mut c, &mut d);

    // Diagonals: G(v0,v5,v10,v15) G(v1,v6,v11,v12) | G(v2,v7,v8,v13) G(v3,v4,v9,v14).
    let mut e = [
        i64x2_shuffle::<1, 2>(b[0], b[1]),
        i64x2_shuffle::<1, 2>(b[1], b[0]),
    ];
    let mut f = [c[1], c[0]];
    let mut g = [
        i64x2_shuffle::<1, 2>(d[1], d[0]),
        i64x2_shuffle::<1, 2>(d[0], d[1]),
    ];
    mix(&mut a, &mut e, &mut f, &mut g);

    let out = [
        a[0],
        a[1],
        i64x2_shuffle::<1, 2>(e[1], e[0]),
        i64x2_shuffle::<1, 2>(e[0], e[1]),
        f[1],
        f[0],
        i64x2_shuffle::<1, 2>(g[0], g[1]),
        i64x2_shuffle::<1, 2>(g[1], g[0]),
    ];
    for (i, v) in at.into_iter().zip(out) {
        q[i] = v;
    }
}
