//! Transposing copies: a matrix stored column by column (the transposed
//! view of a row-major one, `w.t()`) written out row-major.
//!
//! A copy that reads one element per column for each output row touches a
//! new cache line per element, and with a power-of-two column stride (512
//! f32 = 2 KiB) those lines fall into a few L1 sets and evict each other:
//! a 512×512 transpose cost ~240 µs, 0.9 ns an element. Here the copy
//! goes in 8×8 blocks held in registers: eight contiguous reads of eight
//! elements, eight contiguous writes, so every line fetched is used whole.
//! Blocks run down a band of rows before moving right, so a band's output
//! lines are still in cache when the next block column fills their other
//! halves.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// Side of the register block.
const B: usize = 8;

/// `dst[i·cols + j] = src[off + i + j·ld]` for `i < rows`, `j < cols`:
/// element (i, j) of the source lies at `off + i + j·ld` (its columns are
/// contiguous), `dst` is row-major with `rows·cols` elements, every one
/// of them written.
///
/// # Panics
/// When the source or destination is too short for the shape (callers
/// pass views checked at construction).
pub(crate) fn transpose_into<E: Copy + Send + Sync>(
    src: &[E],
    off: usize,
    ld: usize,
    rows: usize,
    cols: usize,
    dst: &mut [MaybeUninit<E>],
) {
    #[cfg(target_arch = "x86_64")]
    let simd = std::arch::is_x86_feature_detected!("avx");
    #[cfg(not(target_arch = "x86_64"))]
    let simd = false;
    assert_eq!(dst.len(), rows * cols, "transpose_into: destination size");
    if rows * cols < PAR_ELEMS || rows < 2 * PAR_ROWS {
        return transpose_with(src, off, ld, rows, cols, dst, simd);
    }
    // Bands of output rows on both cores. Besides the halved time, this
    // keeps rayon's worker busy between the parallel GEMMs around a copy:
    // a serial 512×512 copy ran at 40% of its speed next to the idle
    // worker's spinning (160 against 65 µs with one thread), and the GEMM
    // after it paid for waking that worker.
    crate::threads::init();
    dst.par_chunks_mut(PAR_ROWS * cols)
        .enumerate()
        .for_each(|(band, out)| {
            let r = out.len() / cols;
            transpose_with(src, off + band * PAR_ROWS, ld, r, cols, out, simd);
        });
}

/// Copies of at least this many elements run in parallel.
const PAR_ELEMS: usize = 1 << 15;
/// Output rows per parallel task (a multiple of the 16-row groups).
const PAR_ROWS: usize = 64;

/// [`transpose_into`], with the AVX blocks only when `simd` (and the
/// element is 4 or 8 bytes).
fn transpose_with<E: Copy>(
    src: &[E],
    off: usize,
    ld: usize,
    rows: usize,
    cols: usize,
    dst: &mut [MaybeUninit<E>],
    simd: bool,
) {
    assert_eq!(dst.len(), rows * cols, "transpose_into: destination size");
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(
        off + (rows - 1) + (cols - 1) * ld < src.len(),
        "transpose_into: source too short"
    );
    let (full_r, full_c) = (rows - rows % B, cols - cols % B);
    #[cfg(target_arch = "x86_64")]
    let avx = simd && matches!(std::mem::size_of::<E>(), 4 | 8);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = simd;
    // Super-blocks of 2×2 register blocks, left to right along a band of
    // 16 rows: each reads 16 source lines and writes 16 output lines whole.
    for i1 in (0..full_r).step_by(2 * B) {
        for j1 in (0..full_c).step_by(2 * B) {
            for j0 in (j1..full_c.min(j1 + 2 * B)).step_by(B) {
                for i0 in (i1..full_r.min(i1 + 2 * B)).step_by(B) {
                    let (s, d) = (off + i0 + j0 * ld, i0 * cols + j0);
                    #[cfg(target_arch = "x86_64")]
                    if avx {
                        // SAFETY: the CPU has AVX (checked above) and E is 4
                        // or 8 bytes, moved as bits. The block reads
                        // src[s + j·ld + i] and writes dst[d + i·cols + j]
                        // for i, j < 8; with i0 + 8 ≤ rows and j0 + 8 ≤ cols
                        // those lie inside the source (asserted above) and
                        // inside `dst` (rows·cols long).
                        unsafe {
                            let (sp, dp) = (src.as_ptr().add(s), dst.as_mut_ptr().add(d));
                            if std::mem::size_of::<E>() == 4 {
                                avx::block_f32(sp.cast(), ld, dp.cast(), cols);
                            } else {
                                avx::block_f64(sp.cast(), ld, dp.cast(), cols);
                            }
                        }
                        continue;
                    }
                    block(src, s, ld, dst, d, cols);
                }
            }
        }
    }
    // The ragged right columns and bottom rows, element by element.
    for i in 0..full_r {
        for j in full_c..cols {
            dst[i * cols + j].write(src[off + i + j * ld]);
        }
    }
    for i in full_r..rows {
        for j in 0..cols {
            dst[i * cols + j].write(src[off + i + j * ld]);
        }
    }
}

/// One 8×8 block: column `j` of the block is `src[s + j·ld ..][..8]`, row
/// `i` of the output is `dst[d + i·ldd ..][..8]`.
#[inline(always)]
fn block<E: Copy>(
    src: &[E],
    s: usize,
    ld: usize,
    dst: &mut [MaybeUninit<E>],
    d: usize,
    ldd: usize,
) {
    let mut t = [[src[s]; B]; B];
    for (j, col) in t.iter_mut().enumerate() {
        col.copy_from_slice(&src[s + j * ld..][..B]);
    }
    for i in 0..B {
        let row = &mut dst[d + i * ldd..][..B];
        for (j, x) in row.iter_mut().enumerate() {
            x.write(t[j][i]);
        }
    }
}

/// The 8×8 block with AVX shuffles instead of 64 scalar moves (2.5× the
/// speed of the scalar block at 512×512).
#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    /// 32-bit elements: eight loads, the classic unpack / shuffle /
    /// lane-permute network, eight stores.
    ///
    /// # Safety
    /// AVX available; `src + j·ld + i` readable and `dst + i·ldd + j`
    /// writable for i, j < 8.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn block_f32(src: *const f32, ld: usize, dst: *mut f32, ldd: usize) {
        // SAFETY: the caller's contract covers every address below.
        unsafe {
            let r: [__m256; 8] = std::array::from_fn(|j| _mm256_loadu_ps(src.add(j * ld)));
            // Pairs of columns interleaved within each 128-bit half.
            let lo = |a: __m256, b: __m256| _mm256_unpacklo_ps(a, b);
            let hi = |a: __m256, b: __m256| _mm256_unpackhi_ps(a, b);
            let t = [
                lo(r[0], r[1]),
                hi(r[0], r[1]),
                lo(r[2], r[3]),
                hi(r[2], r[3]),
                lo(r[4], r[5]),
                hi(r[4], r[5]),
                lo(r[6], r[7]),
                hi(r[6], r[7]),
            ];
            // u[q] holds output rows q (low half) and q + 4 (high half) for
            // columns 0-3, u[q + 4] the same for columns 4-7.
            let u = [
                _mm256_shuffle_ps::<0x44>(t[0], t[2]),
                _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
                _mm256_shuffle_ps::<0x44>(t[1], t[3]),
                _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
                _mm256_shuffle_ps::<0x44>(t[4], t[6]),
                _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
                _mm256_shuffle_ps::<0x44>(t[5], t[7]),
                _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
            ];
            for q in 0..4 {
                let low = _mm256_permute2f128_ps::<0x20>(u[q], u[q + 4]);
                let high = _mm256_permute2f128_ps::<0x31>(u[q], u[q + 4]);
                _mm256_storeu_ps(dst.add(q * ldd), low);
                _mm256_storeu_ps(dst.add((q + 4) * ldd), high);
            }
        }
    }

    /// 64-bit elements: four 4×4 transposes (unpack, then lane permute).
    ///
    /// # Safety
    /// As [`block_f32`].
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn block_f64(src: *const f64, ld: usize, dst: *mut f64, ldd: usize) {
        // SAFETY: the caller's contract covers every address below.
        unsafe {
            for bj in [0, 4] {
                for bi in [0, 4] {
                    let s = src.add(bi + bj * ld);
                    let r: [__m256d; 4] = std::array::from_fn(|j| _mm256_loadu_pd(s.add(j * ld)));
                    let t0 = _mm256_unpacklo_pd(r[0], r[1]);
                    let t1 = _mm256_unpackhi_pd(r[0], r[1]);
                    let t2 = _mm256_unpacklo_pd(r[2], r[3]);
                    let t3 = _mm256_unpackhi_pd(r[2], r[3]);
                    let d = dst.add(bi * ldd + bj);
                    _mm256_storeu_pd(d, _mm256_permute2f128_pd::<0x20>(t0, t2));
                    _mm256_storeu_pd(d.add(ldd), _mm256_permute2f128_pd::<0x20>(t1, t3));
                    _mm256_storeu_pd(d.add(2 * ldd), _mm256_permute2f128_pd::<0x31>(t0, t2));
                    _mm256_storeu_pd(d.add(3 * ldd), _mm256_permute2f128_pd::<0x31>(t1, t3));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_element_formula_on_ragged_shapes() {
        for &(rows, cols, ld, off) in &[
            (1, 1, 1, 0),
            (8, 8, 8, 0),
            (9, 17, 11, 3),
            (70, 5, 70, 0),
            (3, 130, 4, 1),
            (130, 67, 131, 2),
            (40, 48, 48, 5),
            (300, 200, 301, 1),
        ] {
            for simd in [false, true] {
                let src: Vec<f64> = (0..off + rows + cols * ld).map(|x| x as f64).collect();
                let mut dst = vec![MaybeUninit::new(-1.0); rows * cols];
                transpose_with(&src, off, ld, rows, cols, &mut dst, simd);
                // SAFETY: initialised above (and overwritten).
                let dst: Vec<f64> = dst.iter().map(|x| unsafe { x.assume_init() }).collect();
                let src32: Vec<f32> = src.iter().map(|&x| x as f32).collect();
                let mut dst32 = vec![MaybeUninit::new(-1.0f32); rows * cols];
                transpose_with(&src32, off, ld, rows, cols, &mut dst32, simd);
                // SAFETY: initialised above (and overwritten).
                let dst32: Vec<f32> = dst32.iter().map(|x| unsafe { x.assume_init() }).collect();
                for i in 0..rows {
                    for j in 0..cols {
                        assert_eq!(dst[i * cols + j], src[off + i + j * ld], "({i}, {j})");
                        assert_eq!(
                            dst32[i * cols + j],
                            src32[off + i + j * ld],
                            "f32 ({i}, {j})"
                        );
                    }
                }
            }
        }
    }

    /// The parallel bands (above PAR_ELEMS and 2·PAR_ROWS rows) give the
    /// same elements as the formula.
    #[test]
    fn parallel_bands_match_the_element_formula() {
        let (rows, cols, ld, off) = (300, 200, 301, 1);
        let src: Vec<f32> = (0..off + rows + cols * ld).map(|x| x as f32).collect();
        let mut dst = vec![MaybeUninit::new(-1.0f32); rows * cols];
        transpose_into(&src, off, ld, rows, cols, &mut dst);
        for i in 0..rows {
            for j in 0..cols {
                // SAFETY: initialised above (and overwritten).
                let x = unsafe { dst[i * cols + j].assume_init() };
                assert_eq!(x, src[off + i + j * ld], "({i}, {j})");
            }
        }
    }
}
