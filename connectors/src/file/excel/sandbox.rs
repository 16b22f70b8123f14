//! Spreadsheets are read in a child process, under a memory and a CPU limit.
//!
//! A spreadsheet is a zip (or an OLE container) of formats that declare their own sizes:
//! shared-string counts, sheet dimensions, repeat counts, compressed lengths. calamine
//! reserves memory by several of them before it has read anything, and a failed allocation
//! aborts a Rust process: one crafted file of 1.5 KB stopped the whole hub. So the hub never
//! parses a spreadsheet itself. It starts itself again as a child ([`CHILD_COMMAND`]) with
//! `RLIMIT_AS` and `RLIMIT_CPU` set, feeds it the file on stdin, and reads the sheet back as
//! an Arrow IPC stream of text columns on stdout (a `__line` column first, the sheet's row
//! numbers). A child that runs out of memory or time dies alone, and the upload gets a clear
//! error.
//!
//! The child's answer is trusted no more than any other input: the parent reads it with the
//! same length-checked IPC reader as an upload.

use std::ffi::OsString;
use std::io::{BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use arrow::array::{ArrayRef, AsArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, UInt64Type};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use simpul_schemas::SourcePosition;

use super::{ExcelOptions, not_a_spreadsheet, sheet::Sheet};
use crate::file::arrow_ipc::CheckedIpcRead;
use crate::file::text_fields;
use crate::raw::{RawBatch, ReadProgress, SourceError};

/// The first argument that makes the hub's binary a spreadsheet reader.
pub const CHILD_COMMAND: &str = "__read-spreadsheet";
/// The exit code of a child that refused its input, with the reason on stderr.
const REFUSED: i32 = 3;
/// The IPC column holding each row's sheet row number.
const LINE_COLUMN: &str = "__line";
/// The schema metadata key holding the rows' source (`file (sheet)`).
const SOURCE_KEY: &str = "simpul.source";
/// The most of the child's stderr kept for an error message.
const STDERR_KEPT: u64 = 4096;

/// How spreadsheets are read: the program to start and the limits it runs under.
#[derive(Debug, Clone)]
pub struct SpreadsheetSandbox {
    /// The program, normally the running binary (`std::env::current_exe`).
    pub program: PathBuf,
    /// Arguments before the child's own; normally just [`CHILD_COMMAND`].
    pub args: Vec<OsString>,
    /// The child's address-space limit, in bytes.
    pub memory_bytes: u64,
    /// The child's CPU-time limit, in seconds.
    pub cpu_seconds: u64,
}

static SANDBOX: OnceLock<SpreadsheetSandbox> = OnceLock::new();

/// Makes every spreadsheet in this process be read by `sandbox`'s child process. The first
/// call wins; the `simpul` binary makes it before any command runs. Without it (a library
/// user, unit tests), spreadsheets are read in this process.
pub fn isolate_spreadsheets(sandbox: SpreadsheetSandbox) {
    let _ = SANDBOX.set(sandbox);
}

pub(super) fn installed() -> Option<&'static SpreadsheetSandbox> {
    SANDBOX.get()
}

/// The input a child is fed.
pub(super) enum Input {
    File(std::fs::File),
    Bytes(bytes::Bytes),
}

/// A sheet read by a child process.
pub(super) struct ChildSheet {
    path: String,
    source: Arc<str>,
    columns: Vec<String>,
    child: Child,
    stream: Option<StreamReader<CheckedIpcRead<BufReader<ChildStdout>>>>,
    feeder: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<String>>,
    sandbox: &'static SpreadsheetSandbox,
}

impl ChildSheet {
    /// Starts the child on `input` and waits for the sheet's columns.
    pub(super) fn start(
        sandbox: &'static SpreadsheetSandbox,
        name: &str,
        input: Input,
        options: &ExcelOptions,
        progress: ReadProgress,
    ) -> Result<Self, SourceError> {
        let mut command = Command::new(&sandbox.program);
        command
            .args(&sandbox.args)
            .arg("--name")
            .arg(name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_clear();
        if let Some(sheet) = &options.sheet {
            command.arg("--sheet").arg(sheet);
        }
        if let Some(row) = options.header_row {
            command.arg("--header-row").arg(row.to_string());
        }
        limit(&mut command, sandbox.memory_bytes, sandbox.cpu_seconds);
        let mut child = command.spawn().map_err(|e| SourceError::Io {
            path: name.to_string(),
            source: std::io::Error::new(
                e.kind(),
                format!(
                    "cannot start the spreadsheet reader {}: {e}",
                    sandbox.program.display()
                ),
            ),
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(not_a_spreadsheet(
                name,
                "the spreadsheet reader's pipes could not be opened".into(),
            ));
        };
        let feeder = std::thread::spawn(move || feed(stdin, input, &progress));
        let stderr = std::thread::spawn(move || {
            let mut kept = String::new();
            let mut stderr = stderr;
            let _ = stderr.by_ref().take(STDERR_KEPT).read_to_string(&mut kept);
            // Drain the rest so the child never blocks on a full pipe.
            let _ = std::io::copy(&mut stderr, &mut std::io::sink());
            kept
        });
        let mut sheet = Self {
            path: name.to_string(),
            source: Arc::from(name),
            columns: Vec::new(),
            child,
            stream: None,
            feeder: Some(feeder),
            stderr: Some(stderr),
            sandbox,
        };
        match StreamReader::try_new(CheckedIpcRead::new(BufReader::new(stdout), None), None) {
            Ok(stream) => {
                let schema = stream.schema();
                sheet.source = schema
                    .metadata()
                    .get(SOURCE_KEY)
                    .map_or_else(|| Arc::from(name), |s| Arc::from(s.as_str()));
                sheet.columns = schema
                    .fields()
                    .iter()
                    .skip(1)
                    .map(|f| f.name().clone())
                    .collect();
                sheet.stream = Some(stream);
                Ok(sheet)
            }
            Err(e) => Err(sheet.failure(&e.to_string())),
        }
    }

    /// The normalized column names.
    pub(super) fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The next batch from the child; `None` once it ended well.
    pub(super) fn next_batch(&mut self) -> Option<Result<RawBatch, SourceError>> {
        let stream = self.stream.as_mut()?;
        match stream.next() {
            Some(Ok(batch)) => Some(self.raw_batch(&batch)),
            Some(Err(e)) => {
                self.stream = None;
                Some(Err(self.failure(&e.to_string())))
            }
            None => {
                self.stream = None;
                match self.finish() {
                    Ok(status) if status.success() => None,
                    _ => Some(Err(self.failure("the sheet ended early"))),
                }
            }
        }
    }

    fn raw_batch(&self, batch: &RecordBatch) -> Result<RawBatch, SourceError> {
        let lines = batch
            .column(0)
            .as_primitive_opt::<UInt64Type>()
            .filter(|_| batch.num_columns() == self.columns.len() + 1)
            .ok_or_else(|| {
                not_a_spreadsheet(&self.path, "the spreadsheet reader sent a bad batch".into())
            })?;
        let positions = lines
            .values()
            .iter()
            .map(|&line| SourcePosition {
                source: self.source.clone(),
                line,
            })
            .collect();
        let schema = Arc::new(Schema::new(text_fields(&self.columns)));
        let batch =
            RecordBatch::try_new(schema, batch.columns()[1..].to_vec()).map_err(|source| {
                SourceError::Arrow {
                    path: self.path.clone(),
                    source,
                }
            })?;
        Ok(RawBatch {
            batch,
            positions,
            malformed: Vec::new(),
        })
    }

    /// Waits for the child and the threads that talk to it.
    fn finish(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(feeder) = self.feeder.take() {
            let _ = feeder.join();
        }
        self.child.wait()
    }

    /// Why the child failed: its own reason when it refused the file, else the limits.
    fn failure(&mut self, reading: &str) -> SourceError {
        self.stream = None;
        let _ = self.child.kill();
        let status = self.finish();
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let stderr = stderr.trim();
        let reason = match status {
            Ok(status) if status.code() == Some(REFUSED) && !stderr.is_empty() => {
                stderr.to_string()
            }
            Ok(status) => {
                tracing::warn!(
                    file = %self.path, %status, stderr, reading,
                    "the spreadsheet reader failed"
                );
                format!(
                    "it could not be read within the limits for one spreadsheet ({} MiB of \
                     memory, {} s of CPU); it is damaged, or far larger than its size suggests. \
                     Open it and save it again, or save it as CSV",
                    self.sandbox.memory_bytes >> 20,
                    self.sandbox.cpu_seconds
                )
            }
            Err(e) => format!("the spreadsheet reader could not be waited for: {e}"),
        };
        not_a_spreadsheet(&self.path, reason)
    }
}

impl Drop for ChildSheet {
    fn drop(&mut self) {
        if self.stream.is_some() {
            let _ = self.child.kill();
        }
        let _ = self.finish();
        if let Some(stderr) = self.stderr.take() {
            let _ = stderr.join();
        }
    }
}

/// Writes the input to the child's stdin, then closes it. A child that stops reading (it
/// refused the file, or died) ends the copy with a broken pipe, which is not an error here:
/// the child's exit says what happened.
fn feed(mut stdin: std::process::ChildStdin, input: Input, progress: &ReadProgress) {
    let mut counted = |bytes: &[u8]| -> std::io::Result<()> {
        stdin.write_all(bytes)?;
        progress.add(bytes.len() as u64);
        Ok(())
    };
    let _ = match input {
        Input::Bytes(bytes) => bytes.chunks(1 << 16).try_for_each(&mut counted),
        Input::File(mut file) => {
            let mut buffer = vec![0u8; 1 << 16];
            loop {
                match file.read(&mut buffer) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        if let Err(e) = counted(&buffer[..n]) {
                            break Err(e);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            }
        }
    };
}

/// Sets the child's address-space and CPU limits before it runs.
#[cfg(unix)]
fn limit(command: &mut Command, memory_bytes: u64, cpu_seconds: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls `setrlimit`,
    // which is async-signal-safe; it allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(move || {
            let set = |resource, value: u64| {
                let limit = libc::rlimit {
                    rlim_cur: value as libc::rlim_t,
                    rlim_max: value as libc::rlim_t,
                };
                if libc::setrlimit(resource, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            };
            set(libc::RLIMIT_AS, memory_bytes)?;
            set(libc::RLIMIT_CPU, cpu_seconds)?;
            set(libc::RLIMIT_CORE, 0)
        });
    }
}

#[cfg(not(unix))]
fn limit(_command: &mut Command, _memory_bytes: u64, _cpu_seconds: u64) {}

/// The child's side: reads a spreadsheet from stdin and writes its sheet to stdout as an
/// Arrow IPC stream. `args` are those after [`CHILD_COMMAND`]. Exits 0 when the sheet was
/// written, [`REFUSED`] with the reason on stderr when the file is not a readable
/// spreadsheet, and 2 on a bad command line.
pub fn run_spreadsheet_child(args: impl Iterator<Item = OsString>) -> std::process::ExitCode {
    let (name, options) = match child_args(args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("{CHILD_COMMAND}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match write_sheet(
        &name,
        &options,
        std::io::stdin().lock(),
        std::io::stdout().lock(),
    ) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("{reason}");
            std::process::ExitCode::from(REFUSED as u8)
        }
    }
}

fn child_args(mut args: impl Iterator<Item = OsString>) -> Result<(String, ExcelOptions), String> {
    let mut name = None;
    let mut options = ExcelOptions::default();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .and_then(|v| v.into_string().ok())
            .ok_or_else(|| format!("{} needs a value", flag.to_string_lossy()))?;
        match flag.to_str() {
            Some("--name") => name = Some(value),
            Some("--sheet") => options.sheet = Some(value),
            Some("--header-row") => {
                options.header_row = Some(value.parse().map_err(|_| "--header-row: a number")?)
            }
            _ => return Err(format!("unknown argument {}", flag.to_string_lossy())),
        }
    }
    Ok((name.ok_or("--name is required")?, options))
}

/// Reads the spreadsheet on `input` and writes its sheet to `output`; the reason on failure.
fn write_sheet(
    name: &str,
    options: &ExcelOptions,
    mut input: impl Read,
    output: impl Write,
) -> Result<(), String> {
    let mut data = Vec::new();
    input
        .read_to_end(&mut data)
        .map_err(|e| format!("the spreadsheet could not be received: {e}"))?;
    let workbook = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(data))
        .map_err(|e| e.to_string())?;
    let mut sheet = Sheet::read(workbook, name, options).map_err(|e| reason_of(&e))?;
    let mut fields = vec![Field::new(LINE_COLUMN, DataType::UInt64, false)];
    fields.extend(text_fields(sheet.columns()));
    let schema = Arc::new(Schema::new_with_metadata(
        fields,
        [(SOURCE_KEY.to_string(), sheet.source().to_string())].into(),
    ));
    let fail = |e: arrow::error::ArrowError| format!("the sheet could not be sent: {e}");
    let mut writer = StreamWriter::try_new(output, &schema).map_err(fail)?;
    while let Some(batch) = sheet.next_batch() {
        let batch = batch.map_err(|e| reason_of(&e))?;
        let lines: ArrayRef = Arc::new(UInt64Array::from_iter_values(
            batch.positions.iter().map(|p| p.line),
        ));
        let mut columns = vec![lines];
        columns.extend(batch.batch.columns().iter().cloned());
        let out = RecordBatch::try_new(schema.clone(), columns).map_err(fail)?;
        writer.write(&out).map_err(fail)?;
    }
    writer.finish().map_err(fail)
}

/// A reader error's own words, without the file name the parent adds again.
fn reason_of(error: &SourceError) -> String {
    match error {
        SourceError::Format { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_refuses_a_file_that_is_not_a_spreadsheet_with_a_reason() {
        let mut out = Vec::new();
        let reason = write_sheet(
            "rusak.xlsx",
            &ExcelOptions::default(),
            &b"bukan excel"[..],
            &mut out,
        )
        .unwrap_err();
        assert!(!reason.is_empty() && out.is_empty(), "{reason}");
    }

    #[test]
    fn the_child_reads_its_arguments_and_names_a_bad_one() {
        let args = ["--name", "a.xlsx", "--sheet", "Data", "--header-row", "4"].map(OsString::from);
        let (name, options) = child_args(args.into_iter()).unwrap();
        assert_eq!(name, "a.xlsx");
        assert_eq!(options.sheet.as_deref(), Some("Data"));
        assert_eq!(options.header_row, Some(4));
        let bad = ["--name", "a.xlsx", "--header-row", "empat"].map(OsString::from);
        assert!(child_args(bad.into_iter()).is_err());
        assert!(
            child_args(std::iter::empty()).is_err(),
            "a name is required"
        );
    }
}
