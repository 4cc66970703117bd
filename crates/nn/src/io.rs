//! Files: atomic writes, safetensors encoding of state dicts, and loading
//! a state dict into a model.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use tapir_tensor::{Float, Tensor};

use crate::error::{format, io, Error, Result};
use crate::module::{Entry, Module, StateDict};

/// Writes `bytes` to `path` so that a crash at any moment leaves either
/// the old file or the new one, never a partial one: a temporary file in
/// the same folder, fsync, rename over `path`, fsync of the folder.
///
/// # Errors
/// [`Error::Io`] naming the file; the temporary file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, bytes, |f, b| f.write_all(b))
}

/// [`write_atomic`] with the write itself supplied, so tests can fail it
/// midway.
pub(crate) fn write_atomic_with(
    path: &Path,
    bytes: &[u8],
    write: impl FnOnce(&mut File, &[u8]) -> std::io::Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| format(path, "not a file name"))?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        write(&mut f, bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        fs::rename(&tmp, path).map_err(io(path))?;
        // The rename is durable only once the folder's entry is.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// 64-bit FNV-1a of the bytes, stored in the files Tapir writes so that a
/// flipped bit in the data is an error on load rather than a silently
/// different model.
fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// One tensor to write: its dtype, shape and little-endian bytes.
pub(crate) struct Raw {
    pub(crate) dtype: Dtype,
    pub(crate) shape: Vec<usize>,
    pub(crate) data: Vec<u8>,
}

impl safetensors::View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

pub(crate) fn raw<E: Float>(t: &Tensor<E>) -> Raw {
    let v = t.to_vec();
    let data = if E::NAME == "f64" {
        v.iter().flat_map(|x| x.to_f64().to_le_bytes()).collect()
    } else {
        v.iter()
            .flat_map(|x| (x.to_f64() as f32).to_le_bytes())
            .collect()
    };
    Raw {
        dtype: if E::NAME == "f64" {
            Dtype::F64
        } else {
            Dtype::F32
        },
        shape: t.shape().to_vec(),
        data,
    }
}

pub(crate) fn raw_f64(v: &[f64], shape: Vec<usize>) -> Raw {
    Raw {
        dtype: Dtype::F64,
        shape,
        data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

/// bf16 bit patterns as a BF16 tensor.
pub(crate) fn raw_bf16(v: &[u16], shape: Vec<usize>) -> Raw {
    Raw {
        dtype: Dtype::BF16,
        shape,
        data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

/// The bit patterns of a BF16 tensor view.
pub(crate) fn bf16_bits(t: &TensorView<'_>) -> Vec<u16> {
    t.data()
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// Encodes named tensors and metadata as safetensors bytes, with a
/// checksum of the tensors' data in the metadata.
pub(crate) fn encode(
    path: &Path,
    tensors: &[(String, Raw)],
    mut meta: HashMap<String, String>,
) -> Result<Vec<u8>> {
    // Summed in name order, the order `decode` reads them back in.
    let mut order: Vec<&(String, Raw)> = tensors.iter().collect();
    order.sort_by(|a, b| a.0.cmp(&b.0));
    let mut sum = 0u64;
    for (name, r) in order {
        sum = sum.rotate_left(1) ^ checksum(name.as_bytes()) ^ checksum(&r.data);
    }
    meta.insert("tapir.checksum".into(), format!("{sum:016x}"));
    safetensors::serialize(tensors.iter().map(|(n, r)| (n.as_str(), r)), Some(meta))
        .map_err(|e| format(path, format!("cannot encode: {e}")))
}

/// A decoded file: its tensors (borrowing the bytes) and metadata.
pub(crate) struct Decoded<'a> {
    pub(crate) tensors: BTreeMap<String, TensorView<'a>>,
    pub(crate) meta: HashMap<String, String>,
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(io(path))
}

/// Parses safetensors bytes and, when the file carries Tapir's checksum,
/// verifies it.
pub(crate) fn decode<'a>(path: &Path, bytes: &'a [u8]) -> Result<Decoded<'a>> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| format(path, format!("not a valid safetensors file: {e}")))?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| format(path, format!("not a valid safetensors file: {e}")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let tensors: BTreeMap<String, TensorView<'a>> = st.tensors().into_iter().collect();
    if let Some(want) = meta.get("tapir.checksum") {
        let mut sum = 0u64;
        for (name, t) in &tensors {
            sum = sum.rotate_left(1) ^ checksum(name.as_bytes()) ^ checksum(t.data());
        }
        if format!("{sum:016x}") != *want {
            return Err(format(
                path,
                "checksum mismatch: the file is corrupted (a flipped or overwritten byte)",
            ));
        }
    }
    Ok(Decoded { tensors, meta })
}

fn dtype_name(d: Dtype) -> String {
    format!("{d:?}").to_lowercase()
}

/// A tensor view as `Tensor<E>`: same dtype always; f64, f32, f16 and
/// bf16 converted when `convert`.
pub(crate) fn to_tensor<E: Float>(
    path: &Path,
    name: &str,
    t: &TensorView<'_>,
    convert: bool,
) -> Result<Tensor<E>> {
    let mine = if E::NAME == "f64" {
        Dtype::F64
    } else {
        Dtype::F32
    };
    if t.dtype() != mine && !convert {
        return Err(Error::Dtype {
            name: name.to_string(),
            saved: dtype_name(t.dtype()),
            model: E::NAME,
        });
    }
    let b = t.data();
    let v: Vec<f64> = match t.dtype() {
        Dtype::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().expect("4 bytes"))))
            .collect(),
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| {
                f64::from(f32::from_bits(
                    u32::from(u16::from_le_bytes([c[0], c[1]])) << 16,
                ))
            })
            .collect(),
        Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| f16_to_f64(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        other => {
            return Err(Error::Dtype {
                name: name.to_string(),
                saved: dtype_name(other),
                model: E::NAME,
            })
        }
    };
    Tensor::from_vec(v.into_iter().map(E::from_f64).collect(), t.shape())
        .map_err(|e| format(path, format!("{name}: {e}")))
}

/// IEEE half precision to f64 (normals, subnormals, infinities, NaN).
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f64::from(h & 0x3ff);
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// How [`load_state_dict`] and [`Module::load`] treat names and dtypes.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    strict: bool,
    convert_dtype: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            strict: true,
            convert_dtype: false,
        }
    }
}

impl LoadOptions {
    /// Strict (the default): every name in the model must be in the file
    /// and the other way round (PyTorch's `strict=True`). Not strict:
    /// load what matches and list the rest in the [`LoadReport`].
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    pub(crate) fn converts(&self) -> bool {
        self.convert_dtype
    }

    /// Convert saved f64, f32, f16 or bf16 tensors to the model's float
    /// type (default: a dtype other than the model's is an error).
    pub fn convert_dtype(mut self, convert: bool) -> Self {
        self.convert_dtype = convert;
        self
    }
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Names loaded.
    pub loaded: Vec<String>,
    /// In the model, not in the file (left as they were).
    pub missing: Vec<String>,
    /// In the file, not in the model (ignored).
    pub unexpected: Vec<String>,
}

/// Sets a model's parameters and buffers from a state dict, by name
/// (`module.load_state_dict`). Everything is checked before anything is
/// set: on an error the model is unchanged.
///
/// # Errors
/// [`Error::ShapeMismatch`] naming the parameter and both shapes; under
/// strict loading, [`Error::Keys`] listing missing and unexpected names.
pub fn load_state_dict<E: Float, M: Module<E> + ?Sized>(
    model: &M,
    state: &StateDict<E>,
    opts: LoadOptions,
) -> Result<LoadReport> {
    let report = check_state_dict(model, state, opts)?;
    set_state_dict(model, state);
    Ok(report)
}

/// What [`load_state_dict`] would do, with all its checks, changing
/// nothing.
pub(crate) fn check_state_dict<E: Float, M: Module<E> + ?Sized>(
    model: &M,
    state: &StateDict<E>,
    opts: LoadOptions,
) -> Result<LoadReport> {
    let given: HashMap<&str, &Tensor<E>> = state.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut report = LoadReport::default();
    let mut seen = HashSet::new();
    let mut err = None;
    // Collect first, check everything, then set.
    let mut targets: Vec<(String, Vec<usize>)> = Vec::new();
    model.visit(&mut crate::Path::new(), &mut |path, e| {
        let shape = match e {
            Entry::Parameter(p) => {
                if !seen.insert(p.id()) {
                    return;
                }
                p.shape()
            }
            Entry::Buffer(b) => b.value().shape().to_vec(),
        };
        targets.push((path.as_str().to_string(), shape));
    });
    let mut known = HashSet::new();
    for (name, shape) in &targets {
        known.insert(name.as_str());
        match given.get(name.as_str()) {
            None => report.missing.push(name.clone()),
            Some(t) if t.shape() != &shape[..] => {
                err.get_or_insert(Error::ShapeMismatch {
                    name: name.clone(),
                    model: shape.clone(),
                    saved: t.shape().to_vec(),
                });
            }
            Some(_) => report.loaded.push(name.clone()),
        }
    }
    for (n, _) in state {
        if !known.contains(n.as_str()) {
            report.unexpected.push(n.clone());
        }
    }
    if let Some(e) = err {
        return Err(e);
    }
    if opts.strict && (!report.missing.is_empty() || !report.unexpected.is_empty()) {
        return Err(Error::Keys {
            missing: report.missing,
            unexpected: report.unexpected,
        });
    }
    Ok(report)
}

/// Sets every parameter and buffer that `state` names (checked before by
/// [`check_state_dict`]).
pub(crate) fn set_state_dict<E: Float, M: Module<E> + ?Sized>(model: &M, state: &StateDict<E>) {
    let given: HashMap<&str, &Tensor<E>> = state.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut seen = HashSet::new();
    model.visit(&mut crate::Path::new(), &mut |path, e| {
        if let Some(t) = given.get(path.as_str()) {
            match e {
                Entry::Parameter(p) => {
                    if seen.insert(p.id()) {
                        p.set((*t).clone());
                    }
                }
                Entry::Buffer(b) => b.set((*t).clone()),
            }
        }
    });
}

/// Reads a safetensors file as a state dict (PyTorch's
/// `safetensors.torch.load_file`), converting dtypes when `convert`.
///
/// # Errors
/// A missing, truncated or corrupted file ([`Error::Io`],
/// [`Error::Format`]), or a dtype other than `E`'s without `convert`.
pub fn read_safetensors<E: Float>(path: impl AsRef<Path>, convert: bool) -> Result<StateDict<E>> {
    let path = path.as_ref();
    let bytes = read(path)?;
    let d = decode(path, &bytes)?;
    d.tensors
        .iter()
        // PyTorch's BatchNorm step counter (int64); Tapir's BatchNorm does
        // not keep it (it only matters for momentum=None).
        .filter(|(n, t)| !(is_batch_counter(n) && t.dtype() == Dtype::I64))
        .map(|(n, t)| Ok((n.clone(), to_tensor(path, n, t, convert)?)))
        .collect()
}

/// `num_batches_tracked` or `<path>.num_batches_tracked`.
fn is_batch_counter(name: &str) -> bool {
    name.rsplit('.').next() == Some("num_batches_tracked")
}

/// Writes a state dict as safetensors, atomically
/// (`safetensors.torch.save_file`).
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn write_safetensors<E: Float>(path: impl AsRef<Path>, state: &StateDict<E>) -> Result<()> {
    let path = path.as_ref();
    let mut tensors: Vec<(String, Raw)> = state.iter().map(|(n, t)| (n.clone(), raw(t))).collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let bytes = encode(path, &tensors, HashMap::new())?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that fails halfway (disk full, a kill) leaves the previous
    /// file whole and no temporary file behind.
    #[test]
    fn a_write_failing_midway_leaves_the_old_file_intact() {
        let dir = std::env::temp_dir().join(format!("tapir-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ckpt.safetensors");
        write_atomic(&path, b"old contents").unwrap();
        let new = vec![7u8; 1 << 16];
        let e = write_atomic_with(&path, &new, |f, b| {
            f.write_all(&b[..b.len() / 2])?;
            Err(std::io::Error::other("simulated crash midway"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("simulated crash"), "{e}");
        assert_eq!(fs::read(&path).unwrap(), b"old contents");
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            1,
            "temporary file left behind"
        );
        // And a write that completes replaces it.
        write_atomic(&path, &new).unwrap();
        assert_eq!(fs::read(&path).unwrap(), new);
        fs::remove_dir_all(&dir).unwrap();
    }
}
