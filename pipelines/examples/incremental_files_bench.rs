//! An incremental `file` pipeline over a folder of FILES small CSV files (10,000 by default):
//! the first run reads them all; then runs with nothing new are timed, from taking the lease
//! to recording the run, the whole of the hub's work. Goal: under 100 ms.
//!
//! Run: `cargo run --release -p simpul-pipelines --example incremental_files_bench [FILES]`
//!
//! The folder, the lake and the SQLite state store are in a temporary directory.

use std::sync::Arc;
use std::time::Instant;

use simpul_catalog::Catalog;
use simpul_pipelines::{PipelineDefinition, RunProgress, Runner, Trigger, TriggerKind};

const NOTHING_NEW_RUNS: usize = 10;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(10_000);
    let dir = tempfile::tempdir()?;
    let inbox = dir.path().join("masuk");
    for i in 0..files {
        let folder = inbox.join(format!("desa_{:03}", i % 192));
        std::fs::create_dir_all(&folder)?;
        std::fs::write(
            folder.join(format!("laporan_{i:05}.csv")),
            format!("kode,jumlah\n32.14.01.{:04},{}\n", 2001 + i % 192, i),
        )?;
    }
    let lake = url::Url::from_directory_path(dir.path().join("lake"))
        .map_err(|()| "lake path")?
        .to_string();
    let state = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("state.db").display()
    );
    let catalog = Catalog::open(&lake, Default::default(), &state).await?;
    let text = format!(
        "name = \"laporan_desa\"\nsync_mode = \"incremental\"\n\
         [source]\nconnector = \"file\"\nurl = \"{}\"\nglob = \"**/*.csv\"\n\
         [target]\ndataset = \"desa.laporan\"\n",
        inbox.display()
    );
    let definition =
        PipelineDefinition::parse(std::path::Path::new("laporan_desa.toml"), &text, |_| None)?;
    let runner = Runner::new(catalog.clone(), "BAPPEDA");
    let trigger = Trigger {
        kind: TriggerKind::Manual,
        actor: "bench".into(),
    };

    let started = Instant::now();
    let first = runner
        .start(&definition, &trigger)
        .await?
        .execute(Arc::new(RunProgress::default()))
        .await?;
    let first_secs = started.elapsed().as_secs_f64();
    assert_eq!(
        first.run.rows_committed as usize, files,
        "{:?}",
        first.run.error
    );

    let mut times = Vec::with_capacity(NOTHING_NEW_RUNS);
    for _ in 0..NOTHING_NEW_RUNS {
        let started = Instant::now();
        let run = runner
            .start(&definition, &trigger)
            .await?
            .execute(Arc::new(RunProgress::default()))
            .await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(run.run.rows_read, 0, "nothing new: {:?}", run.run.error);
        assert!(
            run.run.delta_version.is_none(),
            "a run with nothing new commits nothing"
        );
    }
    times.sort_by(f64::total_cmp);
    println!("files: {files}");
    println!("first run (reads every file, one commit): {first_secs:.2} s");
    println!(
        "run with nothing new, {NOTHING_NEW_RUNS} runs: min {:.1} ms, median {:.1} ms, max {:.1} ms",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
    Ok(())
}
