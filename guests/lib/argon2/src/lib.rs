//! Argon2id, version 0x13 (RFC 9106), for guests built for wasm32 with
//! SIMD128.
//!
//! The `argon2` crate is written over `u64` words; natively it is compiled a
//! second time for AVX2, but in a guest it runs as scalar wasm and takes about
//! twice as long as on the host. This crate computes the same function with
//! the block compression written in 128-bit wasm vectors (two 64-bit words per
//! vector, the layout of the reference implementation's SSE code).
//!
//! Only what plinth hashes with is here: Argon2id, version 0x13, any memory,
//! time and lane counts, no secret and no associated data. Anything else (an
//! old hash made with Argon2i, a PHC string with `data=`) is left to the
//! `argon2` crate by the caller. The output is checked against the `argon2`
//! crate over a grid of parameters by plinth's integration tests.

#![no_std]

extern crate alloc;

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
compile_error!("plinth-argon2 needs wasm32 with the simd128 target feature");

mod block;

use alloc::vec::Vec;
use blake2::digest::{Update, VariableOutput};
use blake2::{Blake2b512, Blake2bVar, Digest};

use block::Block;

/// The Argon2 version this crate computes (1.3).
pub const VERSION: u32 = 0x13;
/// Argon2's type code for Argon2id.
const TYPE_ID: u32 = 2;
/// Segments per lane (synchronisation points).
const SYNC_POINTS: usize = 4;
/// Pseudo-random addresses in one address block.
const ADDRESSES_PER_BLOCK: usize = 128;

/// Cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Memory in KiB (1 KiB blocks); at least 8 per lane.
    pub m_cost: u32,
    /// Passes over memory; at least 1.
    pub t_cost: u32,
    /// Lanes; 1 to 2^24 − 1.
    pub p_cost: u32,
}

/// Why a hash could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The parameters are outside Argon2's ranges.
    InvalidParams,
    /// The salt is shorter than 8 bytes.
    SaltTooShort,
    /// The output is shorter than 4 bytes.
    OutputTooShort,
    /// An input is longer than 2^32 − 1 bytes.
    TooLong,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::InvalidParams => "invalid Argon2 parameters",
            Error::SaltTooShort => "salt shorter than 8 bytes",
            Error::OutputTooShort => "output shorter than 4 bytes",
            Error::TooLong => "input longer than 2^32 - 1 bytes",
        })
    }
}

fn len32(bytes: &[u8]) -> Result<[u8; 4], Error> {
    u32::try_from(bytes.len())
        .map(u32::to_le_bytes)
        .map_err(|_| Error::TooLong)
}

/// Computes Argon2id (version 0x13) of `password` with `salt` into `out`,
/// whose length is the tag length.
///
/// # Errors
/// [`Error`] for parameters outside Argon2's ranges, a salt under 8 bytes, an
/// output under 4 bytes, or an input over 2^32 − 1 bytes.
pub fn argon2id(password: &[u8], salt: &[u8], params: Params, out: &mut [u8]) -> Result<(), Error> {
    let lanes = params.p_cost as usize;
    if params.t_cost < 1 || !(1..(1 << 24)).contains(&params.p_cost) {
        return Err(Error::InvalidParams);
    }
    if (params.m_cost as usize) < 8 * lanes {
        return Err(Error::InvalidParams);
    }
    if salt.len() < 8 {
        return Err(Error::SaltTooShort);
    }
    if out.len() < 4 {
        return Err(Error::OutputTooShort);
    }
    let tag_len = len32(out)?;

    // H0 over the parameters and inputs (no secret, no associated data).
    let mut h0 = Blake2b512::new();
    Digest::update(&mut h0, params.p_cost.to_le_bytes());
    Digest::update(&mut h0, tag_len);
    Digest::update(&mut h0, params.m_cost.to_le_bytes());
    Digest::update(&mut h0, params.t_cost.to_le_bytes());
    Digest::update(&mut h0, VERSION.to_le_bytes());
    Digest::update(&mut h0, TYPE_ID.to_le_bytes());
    Digest::update(&mut h0, len32(password)?);
    Digest::update(&mut h0, password);
    Digest::update(&mut h0, len32(salt)?);
    Digest::update(&mut h0, salt);
    Digest::update(&mut h0, 0u32.to_le_bytes());
    Digest::update(&mut h0, 0u32.to_le_bytes());
    let h0 = h0.finalize();

    let segment_length = params.m_cost as usize / (SYNC_POINTS * lanes);
    let lane_length = segment_length * SYNC_POINTS;
    let mut memory = Memory {
        blocks: alloc::vec![Block::ZERO; lane_length * lanes],
        lanes,
        lane_length,
        segment_length,
        passes: params.t_cost as usize,
    };

    let mut bytes = [0u8; Block::SIZE];
    for lane in 0..lanes {
        for column in 0..2u32 {
            blake2b_long(
                &[&h0, &column.to_le_bytes(), &(lane as u32).to_le_bytes()],
                &mut bytes,
            );
            memory.blocks[lane * lane_length + column as usize] = Block::from_bytes(&bytes);
        }
    }

    for pass in 0..memory.passes {
        for slice in 0..SYNC_POINTS {
            for lane in 0..lanes {
                memory.fill_segment(pass, slice, lane);
            }
        }
    }

    let mut last = memory.blocks[lane_length - 1];
    for lane in 1..lanes {
        last.xor_assign(&memory.blocks[lane * lane_length + lane_length - 1]);
    }
    last.write_bytes(&mut bytes);
    blake2b_long(&[&bytes], out);
    Ok(())
}

/// Argon2's variable-length hash H′ of the concatenated `inputs` into `out`
/// (1 to 2^32 − 1 bytes, which the callers guarantee).
fn blake2b_long(inputs: &[&[u8]], out: &mut [u8]) {
    let out_len = (out.len() as u32).to_le_bytes();
    if out.len() <= 64 {
        // A length of 1..=64 is always accepted.
        if let Ok(mut h) = Blake2bVar::new(out.len()) {
            h.update(&out_len);
            for input in inputs {
                h.update(input);
            }
            let _ = h.finalize_variable(out);
        }
        return;
    }
    let mut h = Blake2b512::new();
    Digest::update(&mut h, out_len);
    for input in inputs {
        Digest::update(&mut h, input);
    }
    // V1 = H(T ‖ X), V(i+1) = H(Vi); each contributes its first 32 bytes
    // until at most 64 remain, which the last hash (of that length) fills.
    let mut v = h.finalize();
    let mut at = 0;
    loop {
        out[at..at + 32].copy_from_slice(&v[..32]);
        at += 32;
        if out.len() - at <= 64 {
            break;
        }
        v = Blake2b512::digest(v);
    }
    if let Ok(mut h) = Blake2bVar::new(out.len() - at) {
        h.update(&v);
        let _ = h.finalize_variable(&mut out[at..]);
    }
}

/// The blocks being filled, lane after lane.
struct Memory {
    blocks: Vec<Block>,
    lanes: usize,
    lane_length: usize,
    segment_length: usize,
    passes: usize,
}

impl Memory {
    /// Fills one segment (RFC 9106 §3.4): Argon2id addresses the first two
    /// slices of the first pass independently of the data, the rest from the
    /// previous block.
    fn fill_segment(&mut self, pass: usize, slice: usize, lane: usize) {
        let independent = pass == 0 && slice < SYNC_POINTS / 2;
        let mut input = Block::ZERO;
        let mut addresses = Block::ZERO;
        if independent {
            input.set_words(&[
                pass as u64,
                lane as u64,
                slice as u64,
                self.blocks.len() as u64,
                self.passes as u64,
                u64::from(TYPE_ID),
            ]);
        }
        let first = if pass == 0 && slice == 0 { 2 } else { 0 };
        if independent && first != 0 {
            next_addresses(&mut input, &mut addresses);
        }

        let lane_start = lane * self.lane_length;
        let segment_start = lane_start + slice * self.segment_length;
        for index in first..self.segment_length {
            let current = segment_start + index;
            // The first block of a lane follows its last.
            let previous = if current == lane_start {
                lane_start + self.lane_length - 1
            } else {
                current - 1
            };
            let random = if independent {
                if index % ADDRESSES_PER_BLOCK == 0 {
                    next_addresses(&mut input, &mut addresses);
                }
                addresses.word(index % ADDRESSES_PER_BLOCK)
            } else {
                self.blocks[previous].word(0)
            };

            let ref_lane = if pass == 0 && slice == 0 {
                lane
            } else {
                (random >> 32) as usize % self.lanes
            };
            let ref_index =
                self.reference_index(pass, slice, index, random as u32, ref_lane == lane);
            let reference = ref_lane * self.lane_length + ref_index;

            // `previous` and `reference` are never `current`: split the
            // blocks around it to borrow all three.
            let (before, rest) = self.blocks.split_at_mut(current);
            let Some((out, after)) = rest.split_first_mut() else {
                return;
            };
            let block = |i: usize| {
                if i < current {
                    &before[i]
                } else {
                    &after[i - current - 1]
                }
            };
            // Version 0x13 XORs later passes into the block they overwrite.
            Block::compress_into(block(previous), block(reference), out, pass > 0);
        }
    }

    /// The column of the reference block in its lane (RFC 9106 §3.4.1.2).
    fn reference_index(
        &self,
        pass: usize,
        slice: usize,
        index: usize,
        j1: u32,
        same_lane: bool,
    ) -> usize {
        let area = if pass == 0 {
            if slice == 0 || same_lane {
                slice * self.segment_length + index - 1
            } else {
                slice * self.segment_length - usize::from(index == 0)
            }
        } else if same_lane {
            self.lane_length - self.segment_length + index - 1
        } else {
            self.lane_length - self.segment_length - usize::from(index == 0)
        } as u64;
        let x = (u64::from(j1) * u64::from(j1)) >> 32;
        let relative = area - 1 - ((area * x) >> 32);
        let start = if pass == 0 || slice == SYNC_POINTS - 1 {
            0
        } else {
            (slice + 1) * self.segment_length
        };
        (start + relative as usize) % self.lane_length
    }
}

/// Advances the counter in `input` and computes the next block of
/// pseudo-random addresses: G(0, G(0, input)).
fn next_addresses(input: &mut Block, addresses: &mut Block) {
    input.increment_word(6);
    let mut once = Block::ZERO;
    Block::compress_into(&Block::ZERO, input, &mut once, false);
    Block::compress_into(&Block::ZERO, &once, addresses, false);
}
