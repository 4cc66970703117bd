//! Numeric CSV tables with a class-label column.

use std::path::Path;

use super::{read_maybe_gz, InMemory};
use crate::error::{format, Result};

/// Which column holds the label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelColumn {
    /// By position, from 0.
    Index(usize),
    /// By header name (needs a header).
    Name(String),
    /// The last column.
    Last,
}

/// How to read a CSV file.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// Whether the first line is a header.
    pub header: bool,
    /// The label column.
    pub label: LabelColumn,
    /// Labels must be below this.
    pub classes: usize,
    /// Each feature is multiplied by this (1/255 for pixel values).
    pub scale: f32,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            header: false,
            label: LabelColumn::Last,
            classes: usize::MAX,
            scale: 1.0,
        }
    }
}

/// Reads a comma-separated table of numbers (gzip undone if present): one
/// example per line, the label column as a class index, every other
/// column a feature. Blank lines are skipped.
///
/// # Errors
/// [`crate::Error::Format`] naming the file, and the line and column
/// where it applies: a cell that is not a number, a line with another
/// number of cells than the first, a label that is not a whole number in
/// `0..classes`, a label name not in the header, no data lines.
pub fn read(path: impl AsRef<Path>, opts: &CsvOptions) -> Result<InMemory> {
    let path = path.as_ref();
    let bytes = read_maybe_gz(path)?;
    let text =
        std::str::from_utf8(&bytes).map_err(|e| format(path, format!("not UTF-8 text: {e}")))?;
    parse(path, text, opts)
}

pub(crate) fn parse(path: &Path, text: &str, opts: &CsvOptions) -> Result<InMemory> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty());
    let mut label_col = match &opts.label {
        LabelColumn::Index(i) => Some(*i),
        LabelColumn::Last => None,
        LabelColumn::Name(_) => None,
    };
    if opts.header {
        let (ln, h) = lines
            .next()
            .ok_or_else(|| format(path, "empty file: no header"))?;
        if let LabelColumn::Name(name) = &opts.label {
            let cols: Vec<&str> = h.split(',').map(|c| c.trim().trim_matches('"')).collect();
            label_col = Some(cols.iter().position(|c| c == name).ok_or_else(|| {
                format(
                    path,
                    format!("line {ln}: no column named '{name}' in the header {cols:?}"),
                )
            })?);
        }
    } else if let LabelColumn::Name(name) = &opts.label {
        return Err(format(
            path,
            format!("the label column '{name}' is named, but the file has no header"),
        ));
    }
    let mut x = Vec::new();
    let mut labels = Vec::new();
    let mut width = None;
    for (ln, line) in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let w = *width.get_or_insert(cells.len());
        if cells.len() != w {
            return Err(format(
                path,
                format!(
                    "line {ln}: {} cells, the first data line has {w}",
                    cells.len()
                ),
            ));
        }
        let lc = label_col.unwrap_or(w - 1);
        if lc >= w {
            return Err(format(
                path,
                format!("line {ln}: label column {lc} but only {w} columns"),
            ));
        }
        for (c, cell) in cells.iter().enumerate() {
            let v: f64 = cell.trim().parse().map_err(|_| {
                format(
                    path,
                    format!(
                        "line {ln}, column {}: '{}' is not a number",
                        c + 1,
                        cell.trim()
                    ),
                )
            })?;
            if c == lc {
                if v < 0.0 || v.fract() != 0.0 || v >= opts.classes as f64 {
                    return Err(format(
                        path,
                        format!(
                            "line {ln}, column {}: label {v} is not a class index below {}",
                            c + 1,
                            opts.classes
                        ),
                    ));
                }
                labels.push(v as usize);
            } else {
                x.push((v * f64::from(opts.scale)) as f32);
            }
        }
    }
    let w = width.ok_or_else(|| format(path, "no data lines"))?;
    Ok(InMemory::new(x, labels, &[w - 1]))
}
