//! f32 products whose left operand has few rows (a batch of 16 through a
//! `Linear`, one step of an RNN), C = A·B with A m×k, m ≤ 16, B k×n
//! row-major.
//!
//! The `gemm` crate packs B into its panel layout on every call. With
//! sixteen rows there is little arithmetic per element of B to hide that
//! behind: in a training step, where the weight is no longer in cache,
//! the 16×784×512 product of an MLP's first layer took 250 µs, while
//! just reading its 1.6 MB weight from memory takes about 100. Here B is
//! read once, in place: each register block keeps an 8-row × 48-column
//! tile of C in 24 vector accumulators, walks down k reading 48
//! consecutive elements of a row of B and broadcasting one element of A
//! per row, and prefetches the rows of B a few steps ahead (with rows
//! 2 KiB apart, the hardware prefetcher sees only two per page). Column
//! panels run in parallel.

use ndarray::{ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

/// Most rows of A taken here.
pub(crate) const MAX_M: usize = 16;
/// Lanes of one accumulator (an AVX-512 register; two AVX2 ones).
const L: usize = 16;
/// Vectors per row of a register block: 48 columns.
const NV: usize = 3;
/// Rows of B ahead to prefetch.
const PREFETCH: usize = 8;

/// Whether [`small_gemm`] takes the product: few rows, B and C with unit
/// column stride, wide and deep enough for the vector blocks, and a CPU
/// with FMA (the blocks use `mul_add`).
pub(crate) fn applies(m: usize, k: usize, n: usize, b: &[isize], c: &[isize]) -> bool {
    m <= MAX_M && k >= 16 && n >= 4 * L && b[1] == 1 && c[1] == 1 && fma()
}

#[cfg(target_arch = "x86_64")]
fn fma() -> bool {
    crate::kernels::has_avx2()
}

#[cfg(not(target_arch = "x86_64"))]
fn fma() -> bool {
    false
}

/// c ← a·b (or c + a·b when `accumulate`); the caller checked
/// [`applies`]. Column bands of C go to rayon tasks when `parallel` (the
/// caller decides by the product's size).
pub(crate) fn small_gemm(
    a: &ArrayView2<'_, f32>,
    b: &ArrayView2<'_, f32>,
    c: &mut ArrayViewMut2<'_, f32>,
    accumulate: bool,
    parallel: bool,
) {
    let (m, k) = a.dim();
    let n = b.dim().1;
    assert!(
        m <= MAX_M && b.dim().0 == k && c.dim() == (m, n) && b.strides()[1] == 1,
        "small_gemm: shapes and layout checked by callers"
    );
    if parallel && rayon::current_num_threads() > 1 {
        crate::threads::init();
        // Four bands (two per core on two cores), whole vectors each.
        let band = n.div_ceil(4).div_ceil(L) * L;
        c.axis_chunks_iter_mut(Axis(1), band)
            .into_par_iter()
            .enumerate()
            .for_each(|(i, mut cb)| {
                let w = cb.dim().1;
                let bb = b.slice(ndarray::s![.., i * band..i * band + w]);
                band_dispatch(a, &bb, &mut cb, accumulate);
            });
    } else {
        band_dispatch(a, b, c, accumulate);
    }
}

/// One band of columns, in the widest vector unit with FMA.
fn band_dispatch(
    a: &ArrayView2<'_, f32>,
    b: &ArrayView2<'_, f32>,
    c: &mut ArrayViewMut2<'_, f32>,
    accumulate: bool,
) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
        unsafe fn wide(
            a: &ArrayView2<'_, f32>,
            b: &ArrayView2<'_, f32>,
            c: &mut ArrayViewMut2<'_, f32>,
            acc: bool,
        ) {
            band(a, b, c, acc)
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2(
            a: &ArrayView2<'_, f32>,
            b: &ArrayView2<'_, f32>,
            c: &mut ArrayViewMut2<'_, f32>,
            acc: bool,
        ) {
            band(a, b, c, acc)
        }
        if crate::kernels::has_avx512() {
            // SAFETY: the CPU has these features, checked just above.
            return unsafe { wide(a, b, c, accumulate) };
        }
        if crate::kernels::has_avx2() {
            // SAFETY: as above.
            return unsafe { avx2(a, b, c, accumulate) };
        }
    }
    band(a, b, c, accumulate)
}

/// Raw layout of the three operands of one band.
#[derive(Clone, Copy)]
struct Layout {
    a: *const f32,
    /// A's row and column strides.
    ar: isize,
    ac: isize,
    b: *const f32,
    /// B's row stride (its column stride is 1).
    br: isize,
    c: *mut f32,
    /// C's row stride (its column stride is 1).
    cr: isize,
    k: usize,
    accumulate: bool,
}

#[inline(always)]
fn band(
    a: &ArrayView2<'_, f32>,
    b: &ArrayView2<'_, f32>,
    c: &mut ArrayViewMut2<'_, f32>,
    accumulate: bool,
) {
    let (m, k) = a.dim();
    let n = b.dim().1;
    let lay = Layout {
        a: a.as_ptr(),
        ar: a.strides()[0],
        ac: a.strides()[1],
        b: b.as_ptr(),
        br: b.strides()[0],
        c: c.as_mut_ptr(),
        cr: c.strides()[0],
        k,
        accumulate,
    };
    // Row blocks of 8, 4, 2, 1 rows; column blocks of 48, 32, 16 columns,
    // then the last n mod 16 columns one at a time.
    let mut r0 = 0;
    while r0 < m {
        let rows = match m - r0 {
            8.. => 8,
            4..=7 => 4,
            2..=3 => 2,
            _ => 1,
        };
        let mut j0 = 0;
        while j0 + L <= n {
            let vecs = ((n - j0) / L).min(NV);
            // SAFETY: rows r0..r0 + rows < m and columns j0..j0 + vecs·L ≤ n
            // lie inside the three views, whose pointers and strides `lay`
            // carries; `c` is borrowed mutably, so nothing else writes it.
            unsafe {
                match (rows, vecs) {
                    (8, 3) => block::<8, 3>(lay, r0, j0),
                    (8, 2) => block::<8, 2>(lay, r0, j0),
                    (8, _) => block::<8, 1>(lay, r0, j0),
                    (4, 3) => block::<4, 3>(lay, r0, j0),
                    (4, 2) => block::<4, 2>(lay, r0, j0),
                    (4, _) => block::<4, 1>(lay, r0, j0),
                    (2, 3) => block::<2, 3>(lay, r0, j0),
                    (2, 2) => block::<2, 2>(lay, r0, j0),
                    (2, _) => block::<2, 1>(lay, r0, j0),
                    (_, 3) => block::<1, 3>(lay, r0, j0),
                    (_, 2) => block::<1, 2>(lay, r0, j0),
                    (_, _) => block::<1, 1>(lay, r0, j0),
                }
            }
            j0 += vecs * L;
        }
        for r in r0..r0 + rows {
            for j in j0..n {
                let mut s = 0.0f32;
                for l in 0..k {
                    s = a[[r, l]].mul_add(b[[l, j]], s);
                }
                let out = &mut c[[r, j]];
                *out = if accumulate { *out + s } else { s };
            }
        }
        r0 += rows;
    }
}

/// C[r0.., j0..] of an R-row × V-vector tile, accumulated over all of k in
/// registers.
///
/// # Safety
/// Rows r0..r0 + R and columns j0..j0 + V·L lie inside the operands that
/// `lay` describes, and nothing else accesses C's tile meanwhile.
#[inline(always)]
unsafe fn block<const R: usize, const V: usize>(lay: Layout, r0: usize, j0: usize) {
    let mut acc = [[[0.0f32; L]; V]; R];
    // SAFETY: by the contract, every offset formed below (rows r0 + r <
    // r0 + R of A and C, rows l < k of B, columns j0 + v·L + i < j0 + V·L)
    // stays inside the views; the prefetch addresses use wrapping
    // arithmetic and are never dereferenced.
    unsafe {
        let a = lay.a.offset(r0 as isize * lay.ar);
        let b = lay.b.add(j0);
        for l in 0..lay.k {
            let row = b.offset(l as isize * lay.br);
            #[cfg(target_arch = "x86_64")]
            {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                let ahead = row.wrapping_offset(PREFETCH as isize * lay.br);
                for v in 0..V {
                    _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(v * L) as *const i8);
                }
            }
            let bv: [[f32; L]; V] =
                std::array::from_fn(|v| (row.add(v * L) as *const [f32; L]).read_unaligned());
            let al = a.offset(l as isize * lay.ac);
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let x = *al.offset(r as isize * lay.ar);
                for (acc_v, bv_v) in acc_r.iter_mut().zip(&bv) {
                    for (s, &y) in acc_v.iter_mut().zip(bv_v) {
                        *s = x.mul_add(y, *s);
                    }
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let crow = lay.c.offset((r0 + r) as isize * lay.cr).add(j0);
            for (v, acc_v) in acc_r.iter().enumerate() {
                let p = crow.add(v * L) as *mut [f32; L];
                let mut out = *acc_v;
                if lay.accumulate {
                    let old = p.read_unaligned();
                    for (o, x) in out.iter_mut().zip(old) {
                        *o += x;
                    }
                }
                p.write_unaligned(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array2};

    fn reference(a: &Array2<f32>, b: &Array2<f32>) -> Array2<f32> {
        let (m, k) = a.dim();
        let n = b.dim().1;
        Array2::from_shape_fn((m, n), |(i, j)| {
            (0..k)
                .map(|l| f64::from(a[[i, l]]) * f64::from(b[[l, j]]))
                .sum::<f64>() as f32
        })
    }

    /// Every row-block and column-block size, the scalar column tail,
    /// strided and transposed A, accumulation, serial and parallel.
    #[test]
    fn matches_a_plain_product_on_every_block_shape() {
        if !fma() {
            return;
        }
        let mut seed = 1u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for &(m, k, n) in &[
            (1, 16, 64),
            (3, 17, 100),
            (7, 40, 80),
            (16, 64, 512),
            (15, 33, 250),
        ] {
            let a = Array2::from_shape_fn((m, k), |_| next());
            let bw = Array2::from_shape_fn((k, n + 5), |_| next());
            let b = bw.slice(s![.., 2..n + 2]);
            let want = reference(&a, &b.to_owned());
            let at = a.t().to_owned();
            for (name, av) in [("row-major", a.view()), ("transposed", at.t())] {
                for parallel in [false, true] {
                    for accumulate in [false, true] {
                        let mut c =
                            Array2::from_elem((m, n), if accumulate { 1.0 } else { f32::NAN });
                        assert!(applies(m, k, n, b.strides(), c.strides()));
                        small_gemm(&av, &b, &mut c.view_mut(), accumulate, parallel);
                        let shift = if accumulate { 1.0 } else { 0.0 };
                        for ((i, j), &x) in c.indexed_iter() {
                            let w = want[[i, j]] + shift;
                            assert!(
                                (x - w).abs() <= 1e-5 * (1.0 + w.abs()),
                                "{name} m{m} k{k} n{n} par {parallel} acc {accumulate} ({i}, {j}): {x} vs {w}"
                            );
                        }
                    }
                }
            }
        }
    }
}
