//! The reference-fixture format and one `assert_close` with per-dtype
//! tolerances.

use std::collections::HashMap;

use tapir_tensor::{Float, IndexArray, Tensor};

/// Relative and absolute tolerance for a dtype: f64 fixtures were computed in
/// f64 by PyTorch, so only rounding differs; f32 runs the same inputs in f32.
pub fn tolerance<E: Float>() -> (f64, f64) {
    if E::NAME == "f64" {
        (1e-10, 1e-12)
    } else {
        (1e-4, 1e-5)
    }
}

/// Asserts equal shapes and |got − want| ≤ atol + rtol·|want| everywhere
/// (NaN matches NaN, ±inf must match exactly).
#[track_caller]
pub fn assert_close<E: Float, F: Float>(got: &Tensor<E>, want: &Tensor<F>, rtol: f64, atol: f64) {
    assert_eq!(got.shape(), want.shape(), "shapes differ");
    for (i, (g, w)) in got.to_vec().into_iter().zip(want.to_vec()).enumerate() {
        let (g, w) = (g.to_f64(), w.to_f64());
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= atol + rtol * w.abs()
        };
        assert!(ok, "element {i}: got {g}, want {w} (rtol {rtol}, atol {atol})\ngot  {got:?}\nwant {want:?}");
    }
}

/// One named case of the fixture file.
pub struct Case {
    /// The case's name (`case NAME`).
    pub name: String,
    /// Its float tensors by label, stored in f64.
    pub tensors: HashMap<String, Tensor<f64>>,
    /// Its index tensors by label.
    pub indices: HashMap<String, IndexArray>,
}

impl Case {
    /// An input tensor converted to the dtype under test.
    pub fn t<E: Float>(&self, label: &str) -> Tensor<E> {
        self.tensors
            .get(label)
            .unwrap_or_else(|| panic!("case {} has no tensor {label}", self.name))
            .cast()
    }

    /// An index tensor.
    pub fn i(&self, label: &str) -> &IndexArray {
        self.indices
            .get(label)
            .unwrap_or_else(|| panic!("case {} has no index tensor {label}", self.name))
    }

    /// The indices of a 1-D index tensor as a Vec.
    pub fn iv(&self, label: &str) -> Vec<usize> {
        self.i(label).iter().copied().collect()
    }

    /// Compares `got` with the stored tensor `label` at the dtype's tolerance.
    #[track_caller]
    pub fn check<E: Float>(&self, label: &str, got: &Tensor<E>) {
        let (rtol, atol) = tolerance::<E>();
        let want = self
            .tensors
            .get(label)
            .unwrap_or_else(|| panic!("case {} has no tensor {label}", self.name));
        assert_close(got, want, rtol, atol);
    }
}

/// Parses the fixture text format written by the generator scripts:
/// `case NAME`, then `t LABEL NDIM DIMS... VALUES...` or
/// `i LABEL NDIM DIMS... VALUES...` lines, then `end`.
pub fn parse_fixtures(text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut cur: Option<Case> = None;
    for (ln, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut it = line.split(' ');
        let kind = it.next().unwrap();
        match kind {
            "case" => {
                cur = Some(Case {
                    name: it.next().expect("case name").to_string(),
                    tensors: HashMap::new(),
                    indices: HashMap::new(),
                })
            }
            "end" => cases.push(cur.take().expect("end without case")),
            "t" | "i" => {
                let c = cur
                    .as_mut()
                    .unwrap_or_else(|| panic!("line {ln}: outside a case"));
                let label = it.next().unwrap().to_string();
                let nd: usize = it.next().unwrap().parse().unwrap();
                let dims: Vec<usize> = (0..nd)
                    .map(|_| it.next().unwrap().parse().unwrap())
                    .collect();
                if kind == "t" {
                    let vals: Vec<f64> = it.map(|v| v.parse().unwrap()).collect();
                    let t =
                        Tensor::from_vec(vals, &dims).unwrap_or_else(|e| panic!("line {ln}: {e}"));
                    c.tensors.insert(label, t);
                } else {
                    let vals: Vec<usize> = it.map(|v| v.parse().unwrap()).collect();
                    let t = tapir_tensor::indices(vals, &dims)
                        .unwrap_or_else(|e| panic!("line {ln}: {e}"));
                    c.indices.insert(label, t);
                }
            }
            other => panic!("line {ln}: unknown record {other}"),
        }
    }
    cases
}
