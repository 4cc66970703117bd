//! Readers and the data loader: valid files read right, malformed ones
//! are errors naming the file (and line and column), mutated ones never
//! panic; batches come in a seeded order.

use std::io::Write;
use std::path::PathBuf;

use proptest::prelude::*;
use tapir_nn::data::csv::{self, CsvOptions, LabelColumn};
use tapir_nn::data::{idx, DataLoader, Dataset, InMemory, Transform};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tapir-nn-data-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn idx_files_raw_and_gzipped_read_as_images_scaled_to_one() {
    let d = dir("idx");
    let pixels: Vec<u8> = (0..3 * 2 * 2).map(|v| (v * 20) as u8).collect();
    std::fs::write(d.join("im"), idx_bytes(&[3, 2, 2], &pixels)).unwrap();
    std::fs::write(d.join("lb.gz"), gz(&idx_bytes(&[3], &[7, 0, 9]))).unwrap();
    let ds = idx::images_and_labels(d.join("im"), d.join("lb.gz"), 10).unwrap();
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.item_shape(), &[1, 2, 2]);
    assert_eq!(ds.labels(), [7, 0, 9]);
    let mut out = [0f32; 4];
    assert_eq!(ds.read(1, &mut out), 0);
    assert_eq!(
        out,
        [80.0 / 255.0, 100.0 / 255.0, 120.0 / 255.0, 140.0 / 255.0]
    );
    // The standard four names in a folder, .gz or not.
    for (name, b) in [
        (
            "train-images-idx3-ubyte.gz",
            gz(&idx_bytes(&[3, 2, 2], &pixels)),
        ),
        ("train-labels-idx1-ubyte", idx_bytes(&[3], &[1, 2, 3])),
        (
            "t10k-images-idx3-ubyte",
            idx_bytes(&[1, 2, 2], &pixels[..4]),
        ),
        ("t10k-labels-idx1-ubyte.gz", gz(&idx_bytes(&[1], &[4]))),
    ] {
        std::fs::write(d.join(name), b).unwrap();
    }
    let (train, test) = idx::mnist_folder(&d).unwrap();
    assert_eq!((train.len(), test.len()), (3, 1));
    assert_eq!(test.labels(), [4]);
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn malformed_idx_files_are_errors_naming_the_file() {
    let d = dir("idx-bad");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("magic.idx", vec![1, 2, 8, 1, 0, 0, 0, 1, 5], "magic number"),
        (
            "type.idx",
            vec![0, 0, 0x0d, 1, 0, 0, 0, 1, 5, 5, 5, 5],
            "type 0x0d",
        ),
        ("short.idx", idx_bytes(&[4, 2, 2], &[0; 10]), "truncated"),
        ("long.idx", idx_bytes(&[1, 2, 2], &[0; 5]), "trailing bytes"),
        ("header.idx", vec![0, 0, 8, 3, 0, 0], "truncated IDX header"),
        ("empty.idx", vec![], "magic number"),
        ("gz.idx", vec![0x1f, 0x8b, 1, 2, 3], "gzip"),
    ];
    for (name, bytes, want) in &cases {
        let p = d.join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = idx::read(&p).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(want), "{name}: {e}");
    }
    // Wrong dimensions, count mismatch, label out of range.
    std::fs::write(d.join("im2"), idx_bytes(&[2, 4], &[0; 8])).unwrap();
    std::fs::write(d.join("im3"), idx_bytes(&[2, 2, 2], &[0; 8])).unwrap();
    std::fs::write(d.join("lb3"), idx_bytes(&[3], &[0, 1, 2])).unwrap();
    std::fs::write(d.join("lb2"), idx_bytes(&[2], &[0, 12])).unwrap();
    let e = idx::images_and_labels(d.join("im2"), d.join("lb2"), 10)
        .unwrap_err()
        .to_string();
    assert!(e.contains("im2") && e.contains("3 dimensions"), "{e}");
    let e = idx::images_and_labels(d.join("im3"), d.join("lb3"), 10)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("lb3") && e.contains("3 labels for 2 images"),
        "{e}"
    );
    let e = idx::images_and_labels(d.join("im3"), d.join("lb2"), 10)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("lb2") && e.contains("label 12 at index 1"),
        "{e}"
    );
    let e = idx::read(d.join("missing")).unwrap_err().to_string();
    assert!(e.contains("missing"), "{e}");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn csv_tables_with_and_without_headers() {
    let d = dir("csv");
    let p = d.join("t.csv");
    std::fs::write(&p, "a,label,b\n1,2,3\n4,0,6\n\n").unwrap();
    let opts = CsvOptions {
        header: true,
        label: LabelColumn::Name("label".into()),
        classes: 3,
        ..Default::default()
    };
    let ds = csv::read(&p, &opts).unwrap();
    assert_eq!(ds.labels(), [2, 0]);
    let mut out = [0f32; 2];
    ds.read(1, &mut out);
    assert_eq!(out, [4.0, 6.0]);
    let opts = CsvOptions {
        header: true,
        label: LabelColumn::Index(0),
        classes: 10,
        ..Default::default()
    };
    assert_eq!(csv::read(&p, &opts).unwrap().labels(), [1, 4]);
    // No header, label last, gzipped, scaled.
    let g = d.join("t.csv.gz");
    std::fs::write(&g, gz(b"255,0,1\n51,102,0\n")).unwrap();
    let opts = CsvOptions {
        classes: 2,
        scale: 1.0 / 255.0,
        ..Default::default()
    };
    let ds = csv::read(&g, &opts).unwrap();
    assert_eq!(ds.labels(), [1, 0]);
    ds.read(1, &mut out);
    assert!(
        (out[0] - 0.2).abs() < 1e-6 && (out[1] - 0.4).abs() < 1e-6,
        "{out:?}"
    );
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn malformed_csv_is_an_error_with_file_line_and_column() {
    let d = dir("csv-bad");
    let opts = CsvOptions {
        classes: 10,
        ..Default::default()
    };
    for (name, text, want) in [
        (
            "cell.csv",
            "1,2,3\n4,x5,6\n",
            "line 2, column 2: 'x5' is not a number",
        ),
        (
            "ragged.csv",
            "1,2,3\n4,5\n",
            "line 2: 2 cells, the first data line has 3",
        ),
        ("label.csv", "1,2,3\n4,5,12\n", "line 2, column 3: label 12"),
        ("frac.csv", "1,2,0.5\n", "line 1, column 3: label 0.5"),
        ("empty.csv", "\n\n", "no data lines"),
    ] {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        let e = csv::read(&p, &opts).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(want), "{name}: {e}");
    }
    let p = d.join("h.csv");
    std::fs::write(&p, "a,b\n1,2\n").unwrap();
    let by_name = CsvOptions {
        header: true,
        label: LabelColumn::Name("y".into()),
        ..Default::default()
    };
    let e = csv::read(&p, &by_name).unwrap_err().to_string();
    assert!(e.contains("no column named 'y'"), "{e}");
    let no_header = CsvOptions {
        label: LabelColumn::Name("b".into()),
        ..Default::default()
    };
    let e = csv::read(&p, &no_header).unwrap_err().to_string();
    assert!(e.contains("no header"), "{e}");
    std::fs::remove_dir_all(d).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Mutated and truncated IDX and CSV files: an error or a dataset,
    /// never a panic.
    #[test]
    fn mutated_files_never_panic(
        cut in 0usize..200,
        flips in proptest::collection::vec((0usize..200, any::<u8>()), 0..4),
        gzip in any::<bool>(),
    ) {
        thread_local!(static D: PathBuf = dir("fuzz"));
        let mut idxb = idx_bytes(&[3, 2, 2], &[9; 12]);
        let mut csvb = b"a,b,label\n1,2,3\n4,5,6\n".to_vec();
        for b in [&mut idxb, &mut csvb] {
            b.truncate(cut.min(b.len()));
            for &(at, x) in &flips {
                if !b.is_empty() {
                    let i = at % b.len();
                    b[i] ^= x;
                }
            }
        }
        let (idxb, csvb) = if gzip { (gz(&idxb), gz(&csvb)) } else { (idxb, csvb) };
        let (pi, pc) = D.with(|d| (d.join("f.idx"), d.join("f.csv")));
        std::fs::write(&pi, &idxb).unwrap();
        std::fs::write(&pc, &csvb).unwrap();
        let _ = idx::read(&pi);
        let _ = idx::images_and_labels(&pi, &pi, 10);
        for header in [false, true] {
            let _ = csv::read(&pc, &CsvOptions { header, classes: 10, ..Default::default() });
        }
    }
}

fn toy(n: usize) -> InMemory {
    InMemory::new(
        (0..n * 4).map(|v| v as f32).collect(),
        (0..n).collect(),
        &[1, 2, 2],
    )
}

#[test]
fn the_loader_is_seeded_complete_and_threads_do_not_change_it() {
    let l = DataLoader::new(toy(10), 4).shuffle(3);
    assert_eq!(l.batches(), 3);
    let e0: Vec<Vec<usize>> = l.epoch(0).map(|b| b.labels).collect();
    assert_eq!(e0.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
    let mut all: Vec<usize> = e0.concat();
    all.sort();
    assert_eq!(all, (0..10).collect::<Vec<_>>(), "every example once");
    assert_ne!(e0.concat(), (0..10).collect::<Vec<_>>(), "shuffled");
    let here = DataLoader::new(toy(10), 4).shuffle(3).prefetch(false);
    let e0h: Vec<Vec<usize>> = here.epoch(0).map(|b| b.labels).collect();
    assert_eq!(e0, e0h);
    let dropped = DataLoader::new(toy(10), 4).drop_last(true);
    let sizes: Vec<usize> = dropped.epoch(0).map(|b| b.labels.len()).collect();
    assert_eq!(sizes, [4, 4]);
    // Unshuffled: dataset order; values follow their labels.
    let b = DataLoader::new(toy(10), 4).epoch(0).nth(1).unwrap();
    assert_eq!(b.labels, [4, 5, 6, 7]);
    assert_eq!(b.x.shape(), &[4, 1, 2, 2]);
    assert_eq!(b.x.to_vec()[..4], [16.0, 17.0, 18.0, 19.0]);
    // An epoch abandoned midway stops its thread without hanging.
    let mut it = l.epoch(5);
    it.next();
    drop(it);
}

#[test]
fn transforms_normalise_flip_and_crop_reproducibly() {
    let norm = DataLoader::new(toy(2), 2).transform(Transform::Normalize {
        mean: vec![1.0],
        std: vec![2.0],
    });
    let b = norm.epoch(0).next().unwrap();
    assert_eq!(b.x.to_vec()[..4], [-0.5, 0.0, 0.5, 1.0]);
    let flip = DataLoader::new(toy(64), 64)
        .shuffle(1)
        .transform(Transform::RandomHorizontalFlip);
    let a = flip.epoch(0).next().unwrap();
    let again = flip.epoch(0).next().unwrap();
    assert_eq!(a.x.to_vec(), again.x.to_vec(), "same seed, same flips");
    let v = a.x.to_vec();
    let flipped = (0..64)
        .filter(|&i| {
            let l = a.labels[i] as f32 * 4.0;
            v[i * 4..i * 4 + 2] == [l + 1.0, l]
        })
        .count();
    assert!((10..54).contains(&flipped), "{flipped} of 64 flipped");
    // Each crop is the 2×2 image shifted by (dy, dx) in {-1, 0, 1}², zeros
    // shifted in; over 32 images some shift is not (0, 0).
    let crop = DataLoader::new(toy(32), 32).transform(Transform::RandomCrop { padding: 1 });
    let b = crop.epoch(0).next().unwrap();
    let c = b.x.to_vec();
    let mut moved = 0;
    for (i, &l) in b.labels.iter().enumerate() {
        let img = |y: isize, x: isize| {
            if (0..2).contains(&y) && (0..2).contains(&x) {
                (l * 4) as f32 + (y * 2 + x) as f32
            } else {
                0.0
            }
        };
        let got = &c[i * 4..i * 4 + 4];
        let shift = (-1..=1)
            .flat_map(|dy| (-1..=1).map(move |dx| (dy, dx)))
            .find(|&(dy, dx)| {
                (0..4).all(|k| got[k] == img(k as isize / 2 + dy, k as isize % 2 + dx))
            });
        let (dy, dx) = shift.unwrap_or_else(|| panic!("image {i} is no shift: {got:?}"));
        moved += usize::from((dy, dx) != (0, 0));
    }
    assert!(moved > 16, "{moved} of 32 moved");
}

#[test]
fn split_is_seeded_and_disjoint() {
    let (a, b) = toy(10).split(7, 42);
    let (a2, _) = toy(10).split(7, 42);
    assert_eq!(a.labels(), a2.labels());
    assert_eq!((a.len(), b.len()), (7, 3));
    let mut all = [a.labels(), b.labels()].concat();
    all.sort();
    assert_eq!(all, (0..10).collect::<Vec<_>>());
}
