//! The IDX format of MNIST, Fashion-MNIST, KMNIST and EMNIST, raw or
//! gzipped.
//!
//! A file is a 4-byte magic number (two zero bytes, a type code, the
//! number of dimensions), one big-endian u32 per dimension, then the
//! values row-major. Images are type 0x08 (unsigned bytes) with three
//! dimensions (count, rows, columns); labels are 0x08 with one.

use std::path::Path;

use super::{read_maybe_gz, InMemory};
use crate::error::{format, Result};

/// An IDX file of unsigned bytes: its dimensions and values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idx {
    /// The dimensions from the header.
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes (gzip undone if present).
///
/// # Errors
/// [`crate::Error::Format`] naming the file for a bad magic number, a
/// type other than unsigned bytes, a file shorter or longer than its
/// header says; [`crate::Error::Io`] if it cannot be read.
pub fn read(path: impl AsRef<Path>) -> Result<Idx> {
    let path = path.as_ref();
    let b = read_maybe_gz(path)?;
    parse(path, &b)
}

pub(crate) fn parse(path: &Path, b: &[u8]) -> Result<Idx> {
    if b.len() < 4 || b[0] != 0 || b[1] != 0 {
        return Err(format(
            path,
            "not an IDX file: the magic number must start with two zero bytes",
        ));
    }
    if b[2] != 0x08 {
        return Err(format(
            path,
            format!(
                "IDX type 0x{:02x} is not supported (only 0x08, unsigned bytes)",
                b[2]
            ),
        ));
    }
    let nd = usize::from(b[3]);
    if nd == 0 || nd > 4 {
        return Err(format(
            path,
            format!("IDX file with {nd} dimensions (expected 1 to 4)"),
        ));
    }
    let head = 4 + 4 * nd;
    if b.len() < head {
        return Err(format(path, "truncated IDX header"));
    }
    let dims: Vec<usize> = (0..nd)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) as usize
        })
        .collect();
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format(path, format!("IDX dimensions {dims:?} overflow")))?;
    let have = b.len() - head;
    if have != n {
        return Err(format(
            path,
            format!(
                "IDX dimensions {dims:?} need {n} values, the file holds {have} ({})",
                if have < n {
                    "truncated"
                } else {
                    "trailing bytes"
                }
            ),
        ));
    }
    Ok(Idx {
        dims,
        data: b[head..].to_vec(),
    })
}

/// An image file and a label file as a dataset of `[1, rows, cols]` images
/// scaled to [0, 1] (torchvision's `MNIST` with `ToTensor()`).
///
/// # Errors
/// Either file unreadable or malformed; images not 3-D; counts that
/// differ; a label of `classes` or more. Each names the file.
pub fn images_and_labels(
    images: impl AsRef<Path>,
    labels: impl AsRef<Path>,
    classes: usize,
) -> Result<InMemory> {
    let (ip, lp) = (images.as_ref(), labels.as_ref());
    let im = read(ip)?;
    let lb = read(lp)?;
    if im.dims.len() != 3 {
        return Err(format(
            ip,
            format!(
                "images must have 3 dimensions (count, rows, columns), got {:?}",
                im.dims
            ),
        ));
    }
    if lb.dims.len() != 1 {
        return Err(format(
            lp,
            format!("labels must have 1 dimension, got {:?}", lb.dims),
        ));
    }
    if im.dims[0] != lb.dims[0] {
        return Err(format(
            lp,
            format!(
                "{} labels for {} images in {}",
                lb.dims[0],
                im.dims[0],
                ip.display()
            ),
        ));
    }
    if let Some((i, &l)) = lb
        .data
        .iter()
        .enumerate()
        .find(|(_, &l)| usize::from(l) >= classes)
    {
        return Err(format(
            lp,
            format!("label {l} at index {i} is out of range for {classes} classes"),
        ));
    }
    let x: Vec<f32> = im.data.iter().map(|&v| f32::from(v) / 255.0).collect();
    let labels: Vec<usize> = lb.data.iter().map(|&l| usize::from(l)).collect();
    Ok(InMemory::new(x, labels, &[1, im.dims[1], im.dims[2]]))
}

/// The train and test sets of an MNIST-layout folder: the four files
/// `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
/// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each raw or with
/// `.gz` (MNIST, Fashion-MNIST and KMNIST ship these names).
///
/// # Errors
/// A missing or malformed file, named.
pub fn mnist_folder(dir: impl AsRef<Path>) -> Result<(InMemory, InMemory)> {
    let dir = dir.as_ref();
    let find = |stem: &str| {
        let raw = dir.join(stem);
        let gz = dir.join(format!("{stem}.gz"));
        if raw.exists() || !gz.exists() {
            raw
        } else {
            gz
        }
    };
    let train = images_and_labels(
        find("train-images-idx3-ubyte"),
        find("train-labels-idx1-ubyte"),
        10,
    )?;
    let test = images_and_labels(
        find("t10k-images-idx3-ubyte"),
        find("t10k-labels-idx1-ubyte"),
        10,
    )?;
    Ok((train, test))
}
