//! Argument checks shared by the tensor ops and the autograd crate's `Var`
//! ops, so that both layers accept and refuse exactly the same inputs with
//! the same messages. Each returns what the op needs to proceed (an output
//! shape, a list of axes) so that callers cannot skip the check and still
//! compute.

use crate::conv::{conv_geometry, Conv1dParams, Conv2dParams, Geom};
use crate::error::{Error, Result};

/// Checks a 2-D convolution's input (N, C, H, W), weight
/// (O, C/groups, KH, KW), optional bias (O) and parameters; returns the
/// output shape (N, O, H', W'). `op` is the op the user called, for the
/// messages.
///
/// # Errors
/// Ranks, channel counts or groups that do not fit, a bias of the wrong
/// shape, zero strides or dilations, or a window larger than the padded
/// input.
pub fn conv2d(
    op: &'static str,
    x: &[usize],
    w: &[usize],
    bias: Option<&[usize]>,
    p: Conv2dParams,
) -> Result<[usize; 4]> {
    let ge = conv2d_geometry(op, x, w, bias, p)?;
    Ok([ge.n, ge.o, ge.oh, ge.ow])
}

/// [`conv2d`]'s check, returning the whole geometry for the kernels.
pub(crate) fn conv2d_geometry(
    op: &'static str,
    x: &[usize],
    w: &[usize],
    bias: Option<&[usize]>,
    p: Conv2dParams,
) -> Result<Geom> {
    let ge = conv_geometry(op, x, w, p)?;
    if let Some(b) = bias {
        if b != [ge.o] {
            return Err(Error::shape(
                op,
                format!(
                    "bias has shape {b:?}, expected [{}] (one per output channel of weight {w:?})",
                    ge.o
                ),
            ));
        }
    }
    Ok(ge)
}

/// Checks a 1-D convolution's input (N, C, L), weight (O, C/groups, K),
/// optional bias (O) and parameters; returns the output shape (N, O, L').
///
/// # Errors
/// As [`conv2d`], with 3-D shapes.
pub fn conv1d(
    op: &'static str,
    x: &[usize],
    w: &[usize],
    bias: Option<&[usize]>,
    p: Conv1dParams,
) -> Result<[usize; 3]> {
    if x.len() != 3 || w.len() != 3 {
        return Err(Error::shape(
            op,
            format!("expects input (N, C, L) and weight (O, C/groups, K), got {x:?} and {w:?}"),
        ));
    }
    if let Some(b) = bias {
        if b != [w[0]] {
            return Err(Error::shape(
                op,
                format!(
                    "bias has shape {b:?}, expected [{}] (one per output channel of weight {w:?})",
                    w[0]
                ),
            ));
        }
    }
    let [n, o, _, l] = conv2d(
        op,
        &[x[0], x[1], 1, x[2]],
        &[w[0], w[1], 1, w[2]],
        None,
        p.to_2d(),
    )
    .map_err(|e| match e {
        // Messages of the 2-D check show 4-D shapes; restate them.
        Error::Shape { op, .. } => Error::shape(
            op,
            format!(
                "input {x:?} and weight {w:?} do not fit (stride {}, padding {}, dilation {}, groups {})",
                p.stride, p.padding, p.dilation, p.groups
            ),
        ),
        e => e,
    })?;
    Ok([n, o, l])
}

/// The axes to sum so that a tensor of shape `from` becomes `to` (the
/// reverse of broadcasting `to` to `from`): the leading axes `from` has in
/// excess, and the axes where `to` has size 1. Used by `sum_to` on tensors
/// and on Vars.
///
/// # Errors
/// When `to` does not broadcast to exactly `from` (more axes, or a size
/// that is neither equal nor 1), naming `op` and both shapes.
pub fn sum_to_axes(op: &'static str, from: &[usize], to: &[usize]) -> Result<Vec<isize>> {
    let bad = || {
        Error::shape(
            op,
            format!("cannot sum shape {from:?} to {to:?}: {to:?} does not broadcast to {from:?}"),
        )
    };
    let lead = from.len().checked_sub(to.len()).ok_or_else(bad)?;
    let mut axes: Vec<isize> = (0..lead as isize).collect();
    for (i, &d) in to.iter().enumerate() {
        let s = from[lead + i];
        if d == 1 && s != 1 {
            axes.push((lead + i) as isize);
        } else if d != s {
            return Err(bad());
        }
    }
    Ok(axes)
}

/// Checks that two operands that must agree exactly have the same shape
/// (a loss's input and target, a direction vector and its point).
///
/// # Errors
/// When they differ, naming `op`, what the operands are, and both shapes.
pub fn same_shape(op: &'static str, what: &str, a: &[usize], b: &[usize]) -> Result<()> {
    if a == b {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            format!("{what} must have the same shape, got {a:?} and {b:?}"),
        ))
    }
}

/// Checks that a tensor of `shape` with elements of type `E` can be
/// allocated before an op builds it (see `Error::TooLarge`); returns its
/// element count.
///
/// # Errors
/// When the element count or the byte size overflows, or the allocator
/// refuses that many bytes, naming `op`, the shape and the bytes.
pub fn alloc<E>(op: &'static str, shape: &[usize]) -> Result<usize> {
    crate::shape::check_alloc::<E>(op, shape)
}

/// Resolves reduction axes (negative ones count from the end) for `op`.
///
/// # Errors
/// An axis out of range or repeated, naming `op`.
pub fn axes(op: &'static str, axes: &[isize], shape: &[usize]) -> Result<Vec<usize>> {
    Ok(crate::shape::normalize_axes(op, axes, shape)?.to_vec())
}
