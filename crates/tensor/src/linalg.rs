//! Matrix multiplication with NumPy semantics.

use std::any::TypeId;

use ndarray::{ArrayD, ArrayView2, ArrayViewD, ArrayViewMut, ArrayViewMut2, Axis, Ix2, IxDyn};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::shape::{broadcast_shapes, numel, Shape};
use crate::tensor::Tensor;

/// Per-matrix work (m·k·n) below which a batched matmul runs its matrices in
/// parallel with rayon; above it each product is threaded inside the GEMM.
const BATCH_PAR_WORK: usize = 96 * 96 * 96;

/// Products with fewer multiply-adds than this stay on the calling thread.
const GEMM_PAR_WORK: usize = 48 * 48 * 48;

/// A right operand stored column by column (`x.matmul(&w.t())`, PyTorch's
/// `Linear` layout, and every `g·Wᵀ` of a backward pass) is first copied
/// row-major by the blocked transpose when it has at least this many
/// elements and the left operand this many rows: the `gemm` crate packs
/// such an operand element by element, which made a 16×512×512 product
/// 10× slower than with the same matrix row-major (360 against 34 µs; 56
/// + 34 µs with the copy) and 128×512×512 1.7× slower.
const NT_COPY_MIN_ELEMS: usize = 64 * 64;
/// See [`NT_COPY_MIN_ELEMS`]: a single row (a vector–matrix product) reads
/// each element of the operand once, as the copy would.
const NT_COPY_MIN_M: usize = 4;

/// c ← a·b, or c ← c + a·b when `accumulate`, for any strides of `a` and `b`.
///
/// f32 and f64 go to the `gemm` crate's kernels (AVX-512/AVX2/FMA picked at
/// run time), threaded over rayon's pool when `parallel` and the product is
/// large enough; see docs/performance.md for why this crate.
pub(crate) fn gemm_into<E: Float>(
    a: &ArrayView2<'_, E>,
    b: &ArrayView2<'_, E>,
    c: &mut ArrayViewMut2<'_, E>,
    accumulate: bool,
    parallel: bool,
) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert!(
        k == k2 && c.dim() == (m, n),
        "gemm_into: shapes checked by callers"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(E::ZERO);
        }
        return;
    }
    let big = m.saturating_mul(n).saturating_mul(k) >= GEMM_PAR_WORK;
    if let Some(ld) = column_major_ld(b) {
        if m >= NT_COPY_MIN_M && k * n >= NT_COPY_MIN_ELEMS && is_gemm_type::<E>() {
            // SAFETY: element (l, j) of the view lies at l + j·ld from its
            // first element, for l < k, j < n (unit row stride, column
            // stride ld, checked by column_major_ld); the view borrows that
            // memory, so the whole span up to the last element is readable
            // for the view's lifetime.
            let span =
                unsafe { std::slice::from_raw_parts(b.as_ptr(), (k - 1) + (n - 1) * ld + 1) };
            let mut rows = Vec::with_capacity(k * n);
            crate::transpose::transpose_into(
                span,
                0,
                ld,
                k,
                n,
                &mut rows.spare_capacity_mut()[..k * n],
            );
            // SAFETY: transpose_into wrote all k·n elements.
            unsafe { rows.set_len(k * n) };
            let b = ArrayView2::from_shape((k, n), &rows).expect("k·n elements");
            return gemm_into(a, &b, c, accumulate, parallel);
        }
    }
    if TypeId::of::<E>() == TypeId::of::<f32>()
        && crate::smallgemm::applies(m, k, n, b.strides(), c.strides())
    {
        // SAFETY: E is f32 (checked just above), so the views have the
        // same type behind the generic parameter.
        let (a, b, c) = unsafe {
            (
                &*(a as *const ArrayView2<'_, E>).cast::<ArrayView2<'_, f32>>(),
                &*(b as *const ArrayView2<'_, E>).cast::<ArrayView2<'_, f32>>(),
                &mut *(c as *mut ArrayViewMut2<'_, E>).cast::<ArrayViewMut2<'_, f32>>(),
            )
        };
        return crate::smallgemm::small_gemm(a, b, c, accumulate, parallel && big);
    }
    let par = if parallel && big {
        crate::threads::init();
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    let (sa, sb) = (a.strides(), b.strides());
    let sc = [c.strides()[0], c.strides()[1]];
    macro_rules! call {
        ($t:ty) => {{
            let (zero, one): ($t, $t) = (0.0, 1.0);
            // SAFETY: the pointers and strides describe the three views
            // exactly (row stride first in ndarray, column stride first in
            // gemm's argument order), so every access stays inside them; `c`
            // is a unique mutable view, so it aliases neither input; E is $t
            // (checked by the TypeId comparison before this call).
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr() as *mut $t,
                    sc[1],
                    sc[0],
                    accumulate,
                    a.as_ptr() as *const $t,
                    sa[1],
                    sa[0],
                    b.as_ptr() as *const $t,
                    sb[1],
                    sb[0],
                    if accumulate { one } else { zero },
                    one,
                    false,
                    false,
                    false,
                    par,
                )
            }
        }};
    }
    if TypeId::of::<E>() == TypeId::of::<f32>() {
        call!(f32)
    } else if TypeId::of::<E>() == TypeId::of::<f64>() {
        call!(f64)
    } else {
        let beta = if accumulate { E::ONE } else { E::ZERO };
        ndarray::linalg::general_mat_mul(E::ONE, a, b, beta, c);
    }
}

/// The column stride of a matrix stored column by column (unit row stride,
/// as `w.t()` of a row-major `w`), if `v` is one with more than one column.
fn column_major_ld<E>(v: &ArrayView2<'_, E>) -> Option<usize> {
    let (rows, cols) = v.dim();
    let s = v.strides();
    (rows > 1 && cols > 1 && s[0] == 1 && s[1] >= rows as isize).then_some(s[1] as usize)
}

/// Whether `gemm_into` hands `E` to the `gemm` crate.
fn is_gemm_type<E: Float>() -> bool {
    TypeId::of::<E>() == TypeId::of::<f32>() || TypeId::of::<E>() == TypeId::of::<f64>()
}

fn as_2d<'a, E: Float>(v: ArrayViewD<'a, E>) -> ArrayView2<'a, E> {
    v.into_dimensionality::<Ix2>().expect("rank 2")
}

/// Picks the batch element of `v` (shape batch_v + [r, c]) for the output
/// batch index `idx`, treating size-1 batch axes as broadcast.
fn batch_view<'a, E: Float>(v: &ArrayViewD<'a, E>, idx: &[usize]) -> ArrayView2<'a, E> {
    let nb = v.ndim() - 2;
    let lead = idx.len() - nb;
    let mut w = v.clone();
    for (d, &i) in idx[lead..].iter().enumerate() {
        let i = if v.shape()[d] == 1 { 0 } else { i };
        w = w.index_axis_move(Axis(0), i);
    }
    as_2d(w)
}

impl<E: Float> Tensor<E> {
    /// Matrix product, C = A·B with cᵢⱼ = Σₖ aᵢₖ·bₖⱼ, with NumPy/PyTorch
    /// semantics: 1-D·1-D is a dot product; a 1-D left (right) operand is a
    /// row (column) vector whose axis is removed afterwards; inputs of
    /// rank > 2 are stacks of matrices whose batch axes broadcast.
    ///
    /// Large products use both cores inside the GEMM kernel; batches of small
    /// matrices run in parallel with rayon.
    ///
    /// Gradient: g·Bᵀ for A and Aᵀ·g for B (1-D operands promoted to
    /// matrices, broadcast batch axes summed back).
    ///
    /// PyTorch: `torch.matmul` (`a @ b`); NumPy `np.matmul`;
    /// `tf.linalg.matmul` needs rank ≥ 2.
    ///
    /// # Errors
    /// When an input is 0-D, the inner sizes differ, or batch axes do not
    /// broadcast.
    ///
    /// ```
    /// use tapir_tensor::Tensor;
    /// let a = Tensor::<f32>::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3])?;
    /// let b = Tensor::<f32>::from_vec(vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0], [3, 2])?;
    /// let c = a.matmul(&b)?;
    /// assert_eq!(c.shape(), &[2, 2]);
    /// assert_eq!(c.to_vec(), [4.0, 5.0, 10.0, 11.0]);
    /// let v = Tensor::<f32>::from_vec(vec![1.0, 1.0, 1.0], [3])?;
    /// assert_eq!(a.matmul(&v)?.to_vec(), [6.0, 15.0]); // matrix·vector: shape [2]
    /// assert_eq!(v.matmul(&v)?.item()?, 3.0); // dot product: 0-d
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn matmul(&self, other: &Self) -> Result<Self> {
        let (ra, rb) = (self.ndim(), other.ndim());
        if ra == 0 || rb == 0 {
            return Err(Error::shape(
                "matmul",
                format!(
                    "both operands need at least one axis, got {:?} and {:?}",
                    self.shape(),
                    other.shape()
                ),
            ));
        }
        let a = if ra == 1 {
            self.unsqueeze(0)?
        } else {
            self.clone()
        };
        let b = if rb == 1 {
            other.unsqueeze(-1)?
        } else {
            other.clone()
        };
        let (m, k) = (a.shape()[a.ndim() - 2], a.shape()[a.ndim() - 1]);
        let (k2, n) = (b.shape()[b.ndim() - 2], b.shape()[b.ndim() - 1]);
        if k != k2 {
            return Err(Error::shape(
                "matmul",
                format!(
                    "inner sizes differ: {:?} @ {:?} ({k} vs {k2})",
                    self.shape(),
                    other.shape()
                ),
            ));
        }
        let batch = broadcast_shapes(
            "matmul",
            &a.shape()[..a.ndim() - 2],
            &b.shape()[..b.ndim() - 2],
        )
        .map_err(|_| {
            Error::shape(
                "matmul",
                format!(
                    "batch axes of {:?} and {:?} do not broadcast",
                    self.shape(),
                    other.shape()
                ),
            )
        })?;
        let nb = numel(&batch);
        let mut out_shape: Shape = batch.clone();
        out_shape.push(m);
        out_shape.push(n);
        crate::shape::check_alloc::<E>("matmul", &out_shape)?;
        if numel(&out_shape) == 0 {
            // Nothing to compute (and a huge batch of empty products must
            // not be looped over).
            return Ok(Self::zeros(&out_shape));
        }
        // Uninitialised: every GEMM below overwrites its whole output
        // (`accumulate` false: the destination is written, never read), and
        // zero-filling it first cost a full extra pass.
        let mut uninit = ArrayD::<E>::uninit(IxDyn(&[nb, m, n]));
        // SAFETY: the view only carries the pointer and layout of `uninit`
        // (same shape, standard strides) to the GEMMs, which write every
        // element before anything reads one (m, n, k ≥ 1 here or k = 0,
        // where gemm_into fills with zeros); `uninit` outlives the view and
        // is not touched while it exists.
        let mut out = unsafe {
            ArrayViewMut::from_shape_ptr(IxDyn(&[nb, m, n]), uninit.as_mut_ptr() as *mut E)
        };
        let (av, bv) = (a.nd(), b.nd());
        if batch.is_empty() {
            let mut o = out
                .index_axis_mut(Axis(0), 0)
                .into_dimensionality::<Ix2>()
                .expect("rank 2");
            gemm_into(&as_2d(av), &as_2d(bv), &mut o, false, true);
        } else {
            let batch_index = |mut f: usize| {
                let mut idx: Shape = Shape::from_elem(0, batch.len());
                for d in (0..batch.len()).rev() {
                    idx[d] = f % batch[d];
                    f /= batch[d];
                }
                idx
            };
            // Small matrices: one per rayon task, each GEMM single-threaded.
            // Large ones: one after another, each GEMM threaded.
            let par_batches = nb > 1 && m * n * k < BATCH_PAR_WORK;
            let work = |(i, mut o): (usize, ArrayViewMut2<E>)| {
                let idx = batch_index(i);
                let x = batch_view(&av, &idx);
                let y = batch_view(&bv, &idx);
                gemm_into(&x, &y, &mut o, false, !par_batches);
            };
            let mut out3 = out
                .view_mut()
                .into_dimensionality::<ndarray::Ix3>()
                .expect("rank 3");
            if par_batches {
                out3.axis_iter_mut(Axis(0))
                    .into_par_iter()
                    .enumerate()
                    .for_each(work);
            } else {
                out3.axis_iter_mut(Axis(0)).enumerate().for_each(work);
            }
        }
        drop(out);
        // SAFETY: every element was written above, and the view is gone.
        let out = unsafe { uninit.assume_init() };
        let mut final_shape = out_shape;
        if rb == 1 {
            final_shape.remove(final_shape.len() - 1);
        }
        if ra == 1 {
            final_shape.remove(final_shape.len() - 1 - usize::from(rb != 1));
        }
        Ok(Self::from_owned(
            out.into_shape_with_order(IxDyn(&final_shape))
                .expect("same size"),
        ))
    }
}
