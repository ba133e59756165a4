//! Dequantisation of GGUF tensor data to f32: plain floats (F32, F16, BF16), the 32-value
//! blocks Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and the 256-value k-quant super-blocks Q4_K, Q5_K and
//! Q6_K. Byte layouts follow the `block_*` structs of ggml (`ggml-common.h`); every block is
//! little-endian and self-contained, so a tensor is its blocks in order.

use crate::load::gguf::GgmlType;

fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Decodes `count` values of `ggml_type` from `raw`, whose length is a whole number of blocks
/// holding exactly `count` values (the caller checks it). Unreadable types give no values.
pub(crate) fn dequantize(ggml_type: GgmlType, raw: &[u8], count: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(count);
    match ggml_type {
        GgmlType::F32 => out.extend(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        GgmlType::F16 => out.extend(raw.chunks_exact(2).map(|c| f16_at(c, 0))),
        GgmlType::Bf16 => out.extend(
            raw.chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()),
        ),
        GgmlType::Q8_0 => {
            for block in raw.chunks_exact(34) {
                let d = f16_at(block, 0);
                out.extend(block[2..].iter().map(|&q| d * f32::from(q as i8)));
            }
        }
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            let with_min = ggml_type == GgmlType::Q4_1;
            let header = if with_min { 4 } else { 2 };
            for block in raw.chunks_exact(header + 16) {
                let d = f16_at(block, 0);
                let (m, offset) = if with_min {
                    (f16_at(block, 2), 0.0)
                } else {
                    (0.0, 8.0)
                };
                let qs = &block[header..];
                let value = |q: u8| d * (f32::from(q) - offset) + m;
                out.extend(qs.iter().map(|&q| value(q & 0x0F)));
                out.extend(qs.iter().map(|&q| value(q >> 4)));
            }
        }
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            let with_min = ggml_type == GgmlType::Q5_1;
            let header = if with_min { 4 } else { 2 };
            for block in raw.chunks_exact(header + 20) {
                let d = f16_at(block, 0);
                let (m, offset) = if with_min {
                    (f16_at(block, 2), 0.0)
                } else {
                    (0.0, 16.0)
                };
                let h = &block[header..header + 4];
                let qh = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
                let qs = &block[header + 4..];
                // Element j takes its 5th bit from bit j of qh (low nibbles: j < 16, high: j ≥ 16).
                let value = |q: u8, j: usize| {
                    let high = ((qh >> j) & 1) as u8;
                    d * (f32::from(q | (high << 4)) - offset) + m
                };
                out.extend(qs.iter().enumerate().map(|(j, &q)| value(q & 0x0F, j)));
                out.extend(qs.iter().enumerate().map(|(j, &q)| value(q >> 4, j + 16)));
            }
        }
        GgmlType::Q4K => raw.chunks_exact(144).for_each(|b| q4_k(b, &mut out)),
        GgmlType::Q5K => raw.chunks_exact(176).for_each(|b| q5_k(b, &mut out)),
        GgmlType::Q6K => raw.chunks_exact(210).for_each(|b| q6_k(b, &mut out)),
        GgmlType::Other(_) => {}
    }
    out
}

/// Scale and minimum of sub-block `j` (0..8) from the 12 packed 6-bit values of Q4_K/Q5_K:
/// bytes 0..4 hold the low 6 bits of scales 0..4, bytes 4..8 those of minima 0..4, bytes 8..12
/// the low 4 bits of scales/minima 4..8, whose top 2 bits sit in the top bits of bytes 0..8.
fn scale_min(scales: &[u8], j: usize) -> (f32, f32) {
    let (sc, m) = if j < 4 {
        (scales[j] & 63, scales[j + 4] & 63)
    } else {
        (
            (scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4),
            (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4),
        )
    };
    (f32::from(sc), f32::from(m))
}

/// Q4_K: f16 d, f16 dmin, 12 scale bytes, 128 bytes of nibbles. Each 64-value chunk reads 32
/// bytes: low nibbles with sub-block scale `2c`, high nibbles with `2c + 1`.
fn q4_k(block: &[u8], out: &mut Vec<f32>) {
    let (d, dmin) = (f16_at(block, 0), f16_at(block, 2));
    let scales = &block[4..16];
    for (c, qs) in block[16..144].chunks_exact(32).enumerate() {
        for (half, shift) in [(0, 0), (1, 4)] {
            let (sc, m) = scale_min(scales, 2 * c + half);
            let (scale, min) = (d * sc, dmin * m);
            out.extend(
                qs.iter()
                    .map(|&q| scale * f32::from((q >> shift) & 0x0F) - min),
            );
        }
    }
}

/// Q5_K: as Q4_K plus 32 bytes `qh` after the scales; value `l` of chunk `c`'s low (high)
/// nibbles takes its 5th bit from bit `2c` (`2c + 1`) of `qh[l]`.
fn q5_k(block: &[u8], out: &mut Vec<f32>) {
    let (d, dmin) = (f16_at(block, 0), f16_at(block, 2));
    let scales = &block[4..16];
    let qh = &block[16..48];
    for (c, qs) in block[48..176].chunks_exact(32).enumerate() {
        for (half, shift) in [(0, 0), (1, 4)] {
            let (sc, m) = scale_min(scales, 2 * c + half);
            let (scale, min) = (d * sc, dmin * m);
            let bit = 2 * c + half;
            out.extend(qs.iter().zip(qh).map(|(&q, &h)| {
                let v = ((q >> shift) & 0x0F) | (((h >> bit) & 1) << 4);
                scale * f32::from(v) - min
            }));
        }
    }
}

/// Q6_K: 128 bytes `ql` (low 4 bits), 64 bytes `qh` (high 2 bits), 16 i8 scales, f16 d at the
/// end. Each 128-value half uses 64 bytes of `ql`, 32 of `qh` and 8 scales; its four 32-value
/// quarters take `ql[l]` low, `ql[l + 32]` low, `ql[l]` high, `ql[l + 32]` high nibbles with
/// bits 0–1, 2–3, 4–5, 6–7 of `qh[l]`, and scale `4·0 + l/16`, `2 + l/16`, `4 + l/16`, `6 + l/16`.
fn q6_k(block: &[u8], out: &mut Vec<f32>) {
    let d = f16_at(block, 208);
    let scales = &block[192..208];
    for half in 0..2 {
        let ql = &block[64 * half..64 * half + 64];
        let qh = &block[128 + 32 * half..128 + 32 * half + 32];
        let sc = &scales[8 * half..8 * half + 8];
        for quarter in 0..4 {
            let (lo, shift) = (32 * (quarter % 2), 4 * (quarter / 2));
            out.extend((0..32).map(|l| {
                let low = (ql[lo + l] >> shift) & 0x0F;
                let high = (qh[l] >> (2 * quarter)) & 3;
                let q = i32::from(low | (high << 4)) - 32;
                let s = f32::from(sc[2 * quarter + l / 16] as i8);
                d * s * q as f32
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_1_and_q8_0_blocks_decode_by_hand() {
        let d = half::f16::from_f32(0.5).to_le_bytes();
        let m = half::f16::from_f32(-1.0).to_le_bytes();
        // Q4_1: low nibbles are elements 0..16, high nibbles 16..32.
        let mut q41 = vec![d[0], d[1], m[0], m[1]];
        q41.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let got = dequantize(GgmlType::Q4_1, &q41, 32);
        assert_eq!(got[0], -1.0);
        assert_eq!(got[3], 0.5);
        assert_eq!(got[16], 0.5 * 15.0 - 1.0);
        assert_eq!(got[31], -1.0);
        // Q8_0: signed bytes times the scale.
        let mut q80 = vec![d[0], d[1]];
        q80.extend((0..32).map(|j| (j as i8 - 16) as u8));
        let got = dequantize(GgmlType::Q8_0, &q80, 32);
        assert_eq!(got[0], -8.0);
        assert_eq!(got[31], 7.5);
        // Q4_0: nibble minus 8.
        let mut q40 = vec![d[0], d[1]];
        q40.extend(std::iter::repeat_n(0x0Fu8, 16));
        let got = dequantize(GgmlType::Q4_0, &q40, 32);
        assert_eq!((got[0], got[16]), (3.5, -4.0));
    }
}
