//! Softmax cross-entropy from logits in one pass each way: per row the
//! max-shifted log-sum-exp, the loss against a target distribution, and in
//! the backward pass softmax·T − t, never forming log-probabilities.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::float::Float;
use crate::tensor::Tensor;

/// The target weights t of [`Tensor::softmax_cross_entropy`], row i over
/// classes c.
#[derive(Clone, Debug)]
pub enum XentTargets<E: Float> {
    /// t[i, c] = a[i]·[c = labels[i]] + b[i]·u[c]: class indices with
    /// per-row weights `a` (class weights, 0 for ignored rows), and an
    /// optional spread `b[i]·u[c]` (label smoothing; `u` the class weights
    /// or ones). `b` and `u` may be empty for no spread.
    Labels {
        /// The class of each row.
        labels: Arc<[usize]>,
        /// Weight of each row's own class.
        a: Arc<[E]>,
        /// Per-row spread coefficient (empty: none).
        b: Arc<[E]>,
        /// Per-class spread weights (empty: none).
        u: Arc<[E]>,
    },
    /// t given whole, `[N, C]` (probability targets times class weights).
    Dense(Tensor<E>),
}

impl<E: Float> XentTargets<E> {
    fn check(&self, n: usize, c: usize) -> Result<()> {
        let bad = |msg: String| Err(Error::shape("softmax_cross_entropy", msg));
        match self {
            XentTargets::Labels { labels, a, b, u } => {
                if labels.len() != n || a.len() != n || !(b.is_empty() || b.len() == n) {
                    return bad(format!(
                        "{} labels and {} row weights for {n} rows",
                        labels.len(),
                        a.len()
                    ));
                }
                if b.is_empty() != u.is_empty() || !(u.is_empty() || u.len() == c) {
                    return bad(format!("{} class weights for {c} classes", u.len()));
                }
                if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= c) {
                    return bad(format!(
                        "label {l} (row {i}) is out of range for {c} classes"
                    ));
                }
                Ok(())
            }
            XentTargets::Dense(t) => {
                if t.shape() != [n, c] {
                    return bad(format!(
                        "targets {:?} do not match logits [{n}, {c}]",
                        t.shape()
                    ));
                }
                Ok(())
            }
        }
    }
}

/// e^(x − max) of a row into `e` (the vectorised exp of the element
/// type; x − max is exact, or so far below 0 that e is 0 either way), and
/// (max, Σ e) with the sum in f64.
#[inline]
fn row_exp<E: Float>(row: &[E], e: &mut Vec<E>) -> (f64, f64) {
    let m = row.iter().fold(E::NEG_INFINITY, |a, &x| a.max_nan(x));
    e.clear();
    e.extend(row.iter().map(|&x| (x - m).exp()));
    (m.to_f64(), e.iter().map(|v| v.to_f64()).sum::<f64>())
}

/// Max-shifted ln Σ eˣ of a row, in f64.
#[inline]
fn row_lse<E: Float>(row: &[E], e: &mut Vec<E>) -> f64 {
    let (m, z) = row_exp(row, e);
    if m == f64::NEG_INFINITY || m.is_nan() {
        return m;
    }
    m + z.ln()
}

impl<E: Float> Tensor<E> {
    /// Per-row cross-entropy of softmax(`self`) against target weights t,
    /// loss[i] = Σ_c t[i, c]·(lse[i] − x[i, c]) with lse the max-shifted
    /// log-sum-exp of row i (so finite for logits of ±1e4). `self` is
    /// `[N, C]`; returns the losses `[N]` and the log-sum-exps `[N]` for
    /// [`Tensor::softmax_cross_entropy_backward`].
    ///
    /// # Errors
    /// When `self` is not 2-D or the targets do not fit it.
    ///
    /// ```
    /// use tapir_tensor::{Tensor, XentTargets};
    /// let x = Tensor::<f64>::from_vec(vec![1e4, 0.0, 0.0, 0.0], [2, 2])?;
    /// let t = XentTargets::Labels {
    ///     labels: vec![1, 0].into(),
    ///     a: vec![1.0, 1.0].into(),
    ///     b: Vec::new().into(),
    ///     u: Vec::new().into(),
    /// };
    /// let (loss, _) = x.softmax_cross_entropy(&t)?;
    /// assert_eq!(loss.to_vec(), [1e4, 2f64.ln()]);
    /// # Ok::<(), tapir_tensor::Error>(())
    /// ```
    pub fn softmax_cross_entropy(
        &self,
        targets: &XentTargets<E>,
    ) -> Result<(Tensor<E>, Tensor<E>)> {
        if self.ndim() != 2 {
            return Err(Error::shape(
                "softmax_cross_entropy",
                format!("expects logits [N, C], got {:?}", self.shape()),
            ));
        }
        let (n, c) = (self.shape()[0], self.shape()[1]);
        targets.check(n, c)?;
        let x = self.contiguous();
        let xs = x.as_slice().expect("contiguous");
        let dense = match targets {
            XentTargets::Dense(t) => Some(t.contiguous()),
            _ => None,
        };
        let mut loss = Vec::with_capacity(n);
        let mut lses = Vec::with_capacity(n);
        let mut e = Vec::with_capacity(c);
        for i in 0..n {
            let row = &xs[i * c..(i + 1) * c];
            let lse = row_lse(row, &mut e);
            let l = match (targets, &dense) {
                (_, Some(t)) => {
                    let tr = &t.as_slice().expect("contiguous")[i * c..(i + 1) * c];
                    tr.iter()
                        .zip(row)
                        .filter(|(&w, _)| w != E::ZERO)
                        .map(|(&w, &x)| w.to_f64() * (lse - x.to_f64()))
                        .sum::<f64>()
                }
                (XentTargets::Labels { labels, a, b, u }, None) => {
                    let y = labels[i];
                    let mut l = 0.0;
                    if a[i] != E::ZERO {
                        l += a[i].to_f64() * (lse - row[y].to_f64());
                    }
                    if !b.is_empty() && b[i] != E::ZERO {
                        let spread: f64 = u
                            .iter()
                            .zip(row)
                            .map(|(&w, &x)| w.to_f64() * (lse - x.to_f64()))
                            .sum();
                        l += b[i].to_f64() * spread;
                    }
                    l
                }
                (XentTargets::Dense(_), None) => unreachable!("dense targets copied above"),
            };
            loss.push(E::from_f64(l));
            lses.push(E::from_f64(lse));
        }
        Ok((Tensor::from_vec(loss, [n])?, Tensor::from_vec(lses, [n])?))
    }

    /// The backward pass of [`Tensor::softmax_cross_entropy`] (logits
    /// `self`): given the gradient `g` `[N]` of the per-row losses,
    /// dx[i, c] = g[i]·(softmax[i, c]·Σ_c′ t[i, c′] − t[i, c]), the softmax
    /// recomputed max-shifted (not as exp(x − lse): at logits of 1e4 an
    /// f32 lse has lost three digits), its sum in f64.
    ///
    /// # Errors
    /// When the shapes do not fit the forward pass.
    pub fn softmax_cross_entropy_backward(
        &self,
        targets: &XentTargets<E>,
        g: &Tensor<E>,
    ) -> Result<Tensor<E>> {
        let op = "softmax_cross_entropy_backward";
        if self.ndim() != 2 || g.shape() != [self.shape()[0]] {
            return Err(Error::shape(
                op,
                format!(
                    "logits {:?} and gradient {:?} do not fit",
                    self.shape(),
                    g.shape()
                ),
            ));
        }
        let (n, c) = (self.shape()[0], self.shape()[1]);
        targets.check(n, c)?;
        let x = self.contiguous();
        let xs = x.as_slice().expect("contiguous");
        let gv = g.to_vec();
        let dense = match targets {
            XentTargets::Dense(t) => Some(t.contiguous()),
            _ => None,
        };
        let mut out = vec![E::ZERO; n * c];
        let mut e = Vec::with_capacity(c);
        for i in 0..n {
            let row = &xs[i * c..(i + 1) * c];
            let o = &mut out[i * c..(i + 1) * c];
            let gi = gv[i];
            // The softmax of the row, exp(x − max)/Σ, written into `o`.
            let (_, z) = row_exp(row, &mut e);
            let inv = E::from_f64(1.0 / z);
            for (o, &v) in o.iter_mut().zip(&e) {
                *o = v * inv;
            }
            match (targets, &dense) {
                (_, Some(t)) => {
                    let tr = &t.as_slice().expect("contiguous")[i * c..(i + 1) * c];
                    let total = tr.iter().fold(E::ZERO, |s, &w| s + w);
                    for (o, &w) in o.iter_mut().zip(tr) {
                        *o = gi * (*o * total - w);
                    }
                }
                (XentTargets::Labels { labels, a, b, u }, None) => {
                    let spread = !b.is_empty() && b[i] != E::ZERO;
                    let total = if spread {
                        a[i] + b[i] * u.iter().fold(E::ZERO, |s, &w| s + w)
                    } else {
                        a[i]
                    };
                    for o in o.iter_mut() {
                        *o *= total;
                    }
                    if spread {
                        for (o, &w) in o.iter_mut().zip(u.iter()) {
                            *o -= b[i] * w;
                        }
                    }
                    o[labels[i]] -= a[i];
                    for o in o.iter_mut() {
                        *o *= gi;
                    }
                }
                (XentTargets::Dense(_), None) => unreachable!("dense targets copied above"),
            }
        }
        Tensor::from_vec(out, [n, c])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::Rng;

    /// The sparse form with a spread equals the same targets given dense,
    /// and both equal Σ t·(−log_softmax) computed plainly.
    #[test]
    fn sparse_and_dense_targets_agree_with_the_formula() {
        let mut rng = Rng::seed(2);
        let x = Tensor::<f64>::randn([4, 5], &mut rng);
        let g = Tensor::<f64>::randn([4], &mut rng);
        let labels: Vec<usize> = vec![3, 0, 4, 1];
        let a = vec![0.9, 0.0, 1.7, 0.4];
        let b = vec![0.02, 0.0, 0.05, 0.1];
        let u = vec![1.0, 2.0, 0.5, 1.5, 1.0];
        let sparse = XentTargets::Labels {
            labels: labels.clone().into(),
            a: a.clone().into(),
            b: b.clone().into(),
            u: u.clone().into(),
        };
        let mut t = vec![0.0; 20];
        for i in 0..4 {
            for c in 0..5 {
                t[i * 5 + c] = b[i] * u[c] + if c == labels[i] { a[i] } else { 0.0 };
            }
        }
        let dense = XentTargets::Dense(Tensor::from_vec(t.clone(), [4, 5]).unwrap());
        let logp = x.log_softmax(1).unwrap().to_vec();
        let (ls, _) = x.softmax_cross_entropy(&sparse).unwrap();
        let (ld, _) = x.softmax_cross_entropy(&dense).unwrap();
        let gs = x
            .softmax_cross_entropy_backward(&sparse, &g)
            .unwrap()
            .to_vec();
        let gd = x
            .softmax_cross_entropy_backward(&dense, &g)
            .unwrap()
            .to_vec();
        let p = x.softmax(1).unwrap().to_vec();
        let gv = g.to_vec();
        for i in 0..4 {
            let want: f64 = (0..5).map(|c| -t[i * 5 + c] * logp[i * 5 + c]).sum();
            assert!((ls.to_vec()[i] - want).abs() < 1e-12);
            assert!((ld.to_vec()[i] - want).abs() < 1e-12);
            let total: f64 = t[i * 5..(i + 1) * 5].iter().sum();
            for c in 0..5 {
                let want = gv[i] * (p[i * 5 + c] * total - t[i * 5 + c]);
                assert!((gs[i * 5 + c] - want).abs() < 1e-12);
                assert!((gd[i * 5 + c] - want).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn huge_logits_stay_finite_and_bad_labels_are_errors() {
        let x = Tensor::<f32>::from_vec(vec![1e4, -1e4, 0.0, -1e4, 1e4, 1e4], [2, 3]).unwrap();
        let t = XentTargets::Labels {
            labels: vec![1, 0].into(),
            a: vec![1.0, 1.0].into(),
            b: Vec::new().into(),
            u: Vec::new().into(),
        };
        let (l, _) = x.softmax_cross_entropy(&t).unwrap();
        assert_eq!(l.to_vec(), [2e4, 2e4 + 2f32.ln()]);
        let g = x
            .softmax_cross_entropy_backward(&t, &Tensor::ones([2]))
            .unwrap()
            .to_vec();
        assert!(g.iter().all(|v| v.is_finite()));
        assert_eq!(g[0], 1.0);
        let bad = XentTargets::Labels {
            labels: vec![3, 0].into(),
            a: vec![1.0, 1.0].into(),
            b: Vec::new().into(),
            u: Vec::new().into(),
        };
        let e = x.softmax_cross_entropy(&bad).unwrap_err().to_string();
        assert!(e.contains("label 3") && e.contains("3 classes"), "{e}");
    }
}
