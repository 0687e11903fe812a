//! Reading aggregate reports: the corpora's (or the files listed one per
//! line in NETJES_BENCH_FILES, which scripts/bench-reports.sh gives so that
//! netjes and parsedmarc read the same set), each unpacked, parsed and
//! turned into the stored rows, as `report import` does.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::PathBuf;

fn files() -> Vec<(String, Vec<u8>)> {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata"));
    let paths: Vec<PathBuf> = match std::env::var("NETJES_BENCH_FILES") {
        Ok(list) => std::fs::read_to_string(list).unwrap().lines().map(PathBuf::from).collect(),
        Err(_) => ["parsedmarc-samples/aggregate", "dmarc-report-viewer/dmarc-reports", "opendmarc-aggregate-reports"]
            .iter()
            .flat_map(|d| std::fs::read_dir(root.join(d)).unwrap().map(|e| e.unwrap().path()))
            .filter(|p| p.is_file())
            .collect(),
    };
    paths
        .into_iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

fn read_all(files: &[(String, Vec<u8>)], limits: &netjes_reports::Limits) -> usize {
    let mut rows = 0;
    for (name, bytes) in files {
        for r in netjes_reports::read(name, bytes, limits) {
            if let Ok(netjes_reports::Report::Aggregate(a)) = r {
                rows += netjes_reports::sources::rows_of(&a).len();
            }
        }
    }
    rows
}

fn bench(c: &mut Criterion) {
    let files = files();
    let limits = netjes_reports::Limits::default();
    let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    assert!(read_all(&files, &limits) > 0, "no rows read");
    let mut g = c.benchmark_group("reports");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function(format!("aggregate_corpus_{}_files", files.len()), |b| b.iter(|| read_all(&files, &limits)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
