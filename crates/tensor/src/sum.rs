//! The one summation scheme behind every reduction: blocked pairwise sums.
//!
//! Adding n floats one after another has a worst-case relative error that
//! grows like n·ε (ε = 2⁻²⁴ for f32). Summing by halves instead — a sum
//! is the sum of its two halves, down to blocks of [`BLOCK`] elements —
//! grows like log₂(n)·ε. Inside a block, [`LANES`] accumulators take every
//! `LANES`-th element (each adds at most `BLOCK / LANES` = 16 terms), which
//! is also what lets the compiler keep them in vector registers, and are
//! then added pairwise. For n = 10⁷ the bound is about (16 + 4 + 16)·ε
//! ≈ 2·10⁻⁶ relative to Σ|x|, where a running sum can lose 10⁷·ε.
//!
//! The tree depends only on n: halves split at multiples of [`BLOCK`], and
//! the parallel path hands the two halves of the same tree to two threads.
//! So the serial and the parallel result are bit-identical, whatever the
//! number of threads.
//!
//! Two shapes of sum share the scheme:
//! - [`sum_map`]: Σ f(xᵢ) over a slice (a whole tensor, or one contiguous
//!   row), with the accumulator type chosen by `f` (norms accumulate in f64);
//! - [`sum_rows`]: the sum of R rows of length K, element by element, pairwise
//!   over the rows (leaf blocks of [`ROW_BLOCK`] rows added in order): the
//!   sum over leading axes (bias gradients of `[N, C]` or `[B·T, D]`)
//!   without transposing.
//!
//! [`sum_axes`] reduces any set of axes of a contiguous tensor with those
//! two: it merges neighbouring axes, sums trailing reduced runs with
//! [`sum_map`] and the others with [`sum_rows`], so no reduction copies its
//! input into a transposed layout.

use rayon::prelude::*;

use crate::float::Float;
use crate::kernels::PAR_THRESHOLD;

/// Elements per leaf of the pairwise tree.
pub const BLOCK: usize = 256;
/// Independent accumulators inside a leaf.
pub const LANES: usize = 16;
/// Rows per leaf of the row-wise tree (added in order).
pub const ROW_BLOCK: usize = 16;
/// Below this many elements a subtree is summed on the calling thread.
const PAR_MIN: usize = PAR_THRESHOLD;

/// Where a run of `n` elements (or rows) is split: its first half, rounded
/// down to a multiple of `block` (at least one block).
fn split(n: usize, block: usize) -> usize {
    (n / 2 / block).max(1) * block
}

#[inline(always)]
fn leaf<T: Copy, A: Float>(s: &[T], f: &impl Fn(T) -> A) -> A {
    let mut acc = [A::ZERO; LANES];
    let mut chunks = s.chunks_exact(LANES);
    for c in &mut chunks {
        for j in 0..LANES {
            acc[j] += f(c[j]);
        }
    }
    for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
        *a += f(v);
    }
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for j in 0..w {
            acc[j] += acc[j + w];
        }
    }
    acc[0]
}

fn tree<T: Copy + Sync, A: Float>(s: &[T], f: &(impl Fn(T) -> A + Sync)) -> A {
    if s.len() <= BLOCK {
        return leaf(s, f);
    }
    let (l, r) = s.split_at(split(s.len(), BLOCK));
    if s.len() >= PAR_MIN {
        let (a, b) = rayon::join(|| tree(l, f), || tree(r, f));
        a + b
    } else {
        tree(l, f) + tree(r, f)
    }
}

/// Σ f(xᵢ) over `s`, pairwise (module docs); 0 when empty.
pub fn sum_map<T: Copy + Sync, A: Float>(s: &[T], f: impl Fn(T) -> A + Sync) -> A {
    tree(s, &f)
}

/// Σ xᵢ over `s`, pairwise (module docs); 0 when empty.
pub fn sum<E: Float>(s: &[E]) -> E {
    tree(s, &|x| x)
}

/// `out[j] = Σ_r data[r·stride + j]` for the rows `rows`, pairwise over
/// the rows (a column chunk starting at c is `&data[c..]`). `scratch[d]`
/// is the buffer of tree depth `d`.
fn rows_tree<E: Float>(
    data: &[E],
    stride: usize,
    rows: std::ops::Range<usize>,
    out: &mut [E],
    scratch: &mut Vec<Vec<E>>,
    depth: usize,
    par: bool,
) {
    let w = out.len();
    let n = rows.end - rows.start;
    if n <= ROW_BLOCK {
        let first = rows.start * stride;
        out.copy_from_slice(&data[first..first + w]);
        for r in rows.start + 1..rows.end {
            let row = &data[r * stride..r * stride + w];
            for (o, &v) in out.iter_mut().zip(row) {
                *o += v;
            }
        }
        return;
    }
    let mid = rows.start + split(n, ROW_BLOCK);
    if scratch.len() <= depth {
        scratch.resize_with(depth + 1, Vec::new);
    }
    let mut buf = std::mem::take(&mut scratch[depth]);
    buf.clear();
    buf.resize(w, E::ZERO);
    if par && n * w >= 4 * PAR_MIN {
        let (l, r) = (rows.start..mid, mid..rows.end);
        rayon::join(
            || rows_tree(data, stride, l, out, scratch, depth + 1, true),
            || rows_tree(data, stride, r, &mut buf, &mut Vec::new(), 0, true),
        );
    } else {
        rows_tree(
            data,
            stride,
            rows.start..mid,
            out,
            scratch,
            depth + 1,
            false,
        );
        rows_tree(
            data,
            stride,
            mid..rows.end,
            &mut buf,
            scratch,
            depth + 1,
            false,
        );
    }
    for (o, &v) in out.iter_mut().zip(&buf) {
        *o += v;
    }
    scratch[depth] = buf;
}

/// Columns handed to one task when a row-wise sum runs in parallel.
const COL_CHUNK: usize = 256;

/// The element-wise sum of the `rows` rows of length `k` in `data`
/// (row-major, `rows · k` elements) into `out` (length `k`), pairwise over
/// the rows. Columns are independent, so splitting them across threads
/// does not change any result.
pub fn sum_rows<E: Float>(data: &[E], rows: usize, k: usize, out: &mut [E]) {
    debug_assert_eq!(data.len(), rows * k);
    debug_assert_eq!(out.len(), k);
    if k == 0 {
        return;
    }
    if rows == 0 {
        out.fill(E::ZERO);
        return;
    }
    if data.len() >= PAR_MIN && rows < 4 * ROW_BLOCK && k >= 2 * COL_CHUNK {
        out.par_chunks_mut(COL_CHUNK)
            .enumerate()
            .for_each(|(i, o)| {
                rows_tree(
                    &data[i * COL_CHUNK..],
                    k,
                    0..rows,
                    o,
                    &mut Vec::new(),
                    0,
                    false,
                )
            });
    } else {
        // Many rows: the halves of the row tree run in parallel, each
        // streaming whole rows (faster than strided column chunks).
        rows_tree(data, k, 0..rows, out, &mut Vec::new(), 0, true);
    }
}

/// Sums the axes flagged in `reduce` of the row-major `data` of shape
/// `shape`; the result lists the kept axes in order (row-major).
pub fn sum_axes<E: Float>(data: &[E], shape: &[usize], reduce: &[bool]) -> Vec<E> {
    debug_assert_eq!(shape.len(), reduce.len());
    let out_len: usize = shape
        .iter()
        .zip(reduce)
        .filter(|(_, &r)| !r)
        .map(|(&s, _)| s)
        .product();
    if data.is_empty() {
        return vec![E::ZERO; out_len];
    }
    // Runs of neighbouring axes with the same flag, size-1 axes dropped.
    let mut groups: Vec<(usize, bool)> = Vec::new();
    for (&s, &r) in shape.iter().zip(reduce) {
        if s == 1 {
            continue;
        }
        match groups.last_mut() {
            Some((n, flag)) if *flag == r => *n *= s,
            _ => groups.push((s, r)),
        }
    }
    let mut cur: std::borrow::Cow<[E]> = std::borrow::Cow::Borrowed(data);
    while groups.iter().any(|g| g.1) {
        let &(last, last_reduced) = groups.last().expect("a reduced group");
        if last_reduced {
            // Contiguous rows of `last` elements: one pairwise sum each.
            let next: Vec<E> = if cur.len() >= PAR_MIN && cur.len() / last > 1 {
                cur.par_chunks(last).map(sum).collect()
            } else {
                cur.chunks(last).map(sum).collect()
            };
            groups.pop();
            cur = std::borrow::Cow::Owned(next);
        } else {
            // [prefix, R, K]: sum the R rows of each prefix block.
            let g = groups.len();
            let (r, k) = (groups[g - 2].0, last);
            let block = r * k;
            let mut next = vec![E::ZERO; cur.len() / r];
            for (src, dst) in cur.chunks(block).zip(next.chunks_mut(k)) {
                sum_rows(src, r, k, dst);
            }
            groups.remove(g - 2);
            if g >= 3 {
                // The kept groups on either side of the removed run merge.
                let k2 = groups.pop().expect("kept group").0;
                groups.last_mut().expect("kept group").0 *= k2;
            }
            cur = std::borrow::Cow::Owned(next);
        }
    }
    debug_assert_eq!(cur.len(), out_len);
    cur.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_points_are_block_multiples() {
        assert_eq!(split(257, BLOCK), 256);
        assert_eq!(split(1024, BLOCK), 512);
        assert_eq!(split(1000, BLOCK), 256);
        assert_eq!(split(40, ROW_BLOCK), 16);
    }

    #[test]
    fn axes_sums_match_a_plain_loop() {
        // shape [3, 4, 5, 2], every subset of axes.
        let shape = [3usize, 4, 5, 2];
        let n: usize = shape.iter().product();
        let data: Vec<f64> = (0..n).map(|i| (i * 7 % 13) as f64).collect();
        for mask in 0..16u32 {
            let red: Vec<bool> = (0..4).map(|a| mask & (1 << a) != 0).collect();
            let got = sum_axes(&data, &shape, &red);
            let kept: Vec<usize> = (0..4).filter(|&a| !red[a]).collect();
            let out_shape: Vec<usize> = kept.iter().map(|&a| shape[a]).collect();
            let mut want = vec![0.0; out_shape.iter().product()];
            for (i, &v) in data.iter().enumerate() {
                let idx = [i / 40, i / 10 % 4, i / 2 % 5, i % 2];
                let mut o = 0;
                for &a in &kept {
                    o = o * shape[a] + idx[a];
                }
                want[o] += v;
            }
            assert_eq!(got, want, "mask {mask:04b}");
        }
    }
}
