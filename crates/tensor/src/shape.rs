//! Shapes, axes and broadcasting rules.

use smallvec::SmallVec;

use crate::error::{Error, Result};

/// A tensor shape: sizes of each axis, stored inline up to rank 6.
pub type Shape = SmallVec<[usize; 6]>;

/// Builds a [`Shape`] from anything that views as `&[usize]`.
pub fn shape_of(dims: impl AsRef<[usize]>) -> Shape {
    Shape::from_slice(dims.as_ref())
}

/// Number of elements of a shape (1 for a scalar). Saturates at
/// `usize::MAX` when the product overflows, so an impossible shape can
/// never match the length of a real buffer (see [`checked_numel`]).
pub fn numel(shape: &[usize]) -> usize {
    checked_numel(shape).unwrap_or(usize::MAX)
}

/// Number of elements of a shape, or `None` when the product overflows
/// `usize` (a shape with a zero axis has 0 elements, however large the
/// others).
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    if shape.contains(&0) {
        return Some(0);
    }
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Bytes a tensor of `shape` with elements of `elem` bytes needs,
/// saturating at `u128::MAX`.
fn bytes_of(shape: &[usize], elem: usize) -> u128 {
    if shape.contains(&0) {
        return 0;
    }
    shape
        .iter()
        .try_fold(elem as u128, |n, &d| n.checked_mul(d as u128))
        .unwrap_or(u128::MAX)
}

/// Buffers above this size are test-allocated before an op commits to
/// them, so that a request the allocator refuses is an error, not an
/// abort.
const PROBE_BYTES: u128 = 1 << 30;

/// Checks that a tensor of `shape` with elements of type `E` can be
/// allocated: its element count fits `usize`, its size fits `isize::MAX`
/// bytes (Rust's limit for one allocation), and, for large buffers, the
/// allocator grants that many bytes. Returns the element count. Every
/// op that makes a buffer whose size comes from shapes or arguments
/// (constructors, broadcasting, padding, convolution, matmul, one-hot,
/// ...) calls this first.
///
/// # Errors
/// [`Error::TooLarge`] naming `op`, the shape and the bytes asked for.
pub(crate) fn check_alloc<E>(op: &'static str, shape: &[usize]) -> Result<usize> {
    let elem = std::mem::size_of::<E>();
    let bytes = bytes_of(shape, elem);
    let too_large = || Error::TooLarge {
        op,
        shape: shape.to_vec(),
        bytes,
    };
    let n = checked_numel(shape).ok_or_else(too_large)?;
    if bytes > isize::MAX as u128 {
        return Err(too_large());
    }
    if bytes > PROBE_BYTES {
        let mut probe: Vec<E> = Vec::new();
        probe.try_reserve_exact(n).map_err(|_| too_large())?;
    }
    Ok(n)
}

/// `a · b`, or an error naming `op` and `what` overflowed.
pub(crate) fn mul_checked(op: &'static str, what: &str, a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b)
        .ok_or_else(|| Error::arg(op, format!("{what} overflows: {a} × {b}")))
}

/// Resolves a possibly negative axis against a rank, PyTorch style
/// (`-1` is the last axis).
pub fn normalize_axis(op: &'static str, axis: isize, shape: &[usize]) -> Result<usize> {
    normalize_axis_rank(op, axis, shape.len(), shape)
}

/// Like [`normalize_axis`] but against a rank that may differ from the
/// shape's (for `unsqueeze`, which accepts `ndim + 1` positions).
pub(crate) fn normalize_axis_rank(
    op: &'static str,
    axis: isize,
    rank: usize,
    shape: &[usize],
) -> Result<usize> {
    let r = rank as isize;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(Error::Axis {
            op,
            axis,
            shape: shape.to_vec(),
        });
    }
    Ok(a as usize)
}

/// Resolves a set of axes; duplicates are an error.
pub fn normalize_axes(op: &'static str, axes: &[isize], shape: &[usize]) -> Result<Shape> {
    let mut out = Shape::new();
    for &a in axes {
        let n = normalize_axis(op, a, shape)?;
        if out.contains(&n) {
            return Err(Error::arg(op, format!("axis {a} is repeated in {axes:?}")));
        }
        out.push(n);
    }
    Ok(out)
}

/// The NumPy broadcast of two shapes: align on the right, sizes must be
/// equal or 1.
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Shape> {
    let n = a.len().max(b.len());
    let mut out = Shape::from_elem(0, n);
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(Error::Broadcast {
                op,
                lhs: a.to_vec(),
                rhs: b.to_vec(),
            });
        };
    }
    if checked_numel(&out).is_none() {
        return Err(Error::TooLarge {
            op,
            shape: out.to_vec(),
            bytes: u128::MAX,
        });
    }
    Ok(out)
}

/// Row-major (C order) strides of a shape, in elements. An empty shape
/// (some axis of size 0) addresses nothing and gets zero strides, so that
/// huge sizes on its other axes cannot overflow them; otherwise every
/// stride is at most the element count, which a real tensor's fits.
pub(crate) fn contiguous_strides(shape: &[usize]) -> Shape {
    let mut s = Shape::from_elem(1, shape.len());
    if shape.contains(&0) {
        s.iter_mut().for_each(|v| *v = 0);
        return s;
    }
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1].saturating_mul(shape[i + 1]);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_rules() {
        assert_eq!(
            broadcast_shapes("t", &[2, 1, 3], &[4, 1])
                .unwrap()
                .as_slice(),
            &[2, 4, 3]
        );
        assert_eq!(broadcast_shapes("t", &[], &[3]).unwrap().as_slice(), &[3]);
        assert_eq!(
            broadcast_shapes("t", &[0, 1], &[1, 5]).unwrap().as_slice(),
            &[0, 5]
        );
        let e = broadcast_shapes("add", &[2, 3], &[4]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "add: shapes [2, 3] and [4] cannot be broadcast together"
        );
    }

    #[test]
    fn axes_resolve_negative_and_reject_out_of_range() {
        assert_eq!(normalize_axis("t", -1, &[2, 3]).unwrap(), 1);
        assert_eq!(normalize_axis("t", 0, &[2, 3]).unwrap(), 0);
        let e = normalize_axis("sum", 2, &[2, 3]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "sum: axis 2 is out of range for a tensor of shape [2, 3]"
        );
        assert!(normalize_axes("t", &[0, -2], &[2, 3]).is_err());
    }
}
