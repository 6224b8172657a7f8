//! The log backend (`--audit-log-path`): one event per line, JSON or upstream's legacy text,
//! written by a thread of its own into a file rotated as lumberjack rotates upstream's
//! (`<name>-<UTC time>.<ext>` backups, bounded in number and age; mode 0600).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, NaiveDateTime, Utc};
use common::error::Context as _;

use super::event::{Event, legacy_line};
use super::queue::{self, Queue};

/// `--audit-log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Json,
    Legacy,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "json" => Ok(Format::Json),
            "legacy" => Ok(Format::Legacy),
            other => Err(format!(
                "invalid audit log format {other}, allowed formats are \"legacy,json\""
            )),
        }
    }
}

/// The `--audit-log-*` flags.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// `-` is standard output.
    pub path: PathBuf,
    pub format: Format,
    /// Days a backup is kept; 0 keeps them regardless of age.
    pub max_age_days: u64,
    /// Backups kept; 0 keeps them all.
    pub max_backups: usize,
    /// Megabytes before the file is rotated; 0 is lumberjack's default, 100.
    pub max_size_mb: u64,
    /// Events waiting for the writer (`--audit-log-batch-buffer-size`).
    pub buffer_size: usize,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            path: PathBuf::new(),
            format: Format::Json,
            max_age_days: 0,
            max_backups: 0,
            max_size_mb: 0,
            buffer_size: 10_000,
        }
    }
}

/// Opens the log (a bad path stops startup) and starts its writer thread.
pub fn start(config: &LogConfig) -> crate::Result<Queue> {
    let mut out: Box<dyn Write + Send> = if config.path.as_os_str() == "-" {
        Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::io::stdout(),
        ))
    } else {
        let max_mb = if config.max_size_mb == 0 {
            100
        } else {
            config.max_size_mb
        };
        Box::new(RotatingFile::open(
            &config.path,
            max_mb << 20,
            config.max_backups,
            Duration::from_secs(config.max_age_days * 24 * 3600),
        )?)
    };
    let (queue, mut events) = queue::bounded("log", config.buffer_size);
    let format = config.format;
    std::thread::Builder::new()
        .name("audit-log".into())
        .spawn(move || {
            let mut line = Vec::with_capacity(4 << 10);
            while let Some(first) = events.blocking_recv() {
                // Everything already waiting goes out together, one line per write call (a
                // record: rotation never splits a line) and one flush.
                let mut count = 0;
                let mut failed = false;
                let mut next = Some(first);
                while let Some(event) = next {
                    encode(&event, format, &mut line);
                    failed |= out.write_all(&line).is_err();
                    line.clear();
                    count += 1;
                    next = if count < 10_000 {
                        events.try_recv()
                    } else {
                        None
                    };
                }
                if let Err(e) = out.flush()
                    && !failed
                {
                    tracing::error!(error = %e, "writing the audit log");
                    failed = true;
                }
                if failed {
                    events.failed(count);
                }
                // Under load, events gather meanwhile: one write (and no wake-up of this
                // thread) per many events rather than per event.
                std::thread::sleep(GATHER);
            }
        })
        .io(|| "starting the audit log writer".into())?;
    Ok(queue)
}

/// How long the writer lets events gather after each write; the log lags by at most this
/// (plus the write).
const GATHER: Duration = Duration::from_millis(5);

fn encode(event: &Event, format: Format, buf: &mut Vec<u8>) {
    match format {
        Format::Json => buf.extend_from_slice(&event.to_json()),
        Format::Legacy => buf.extend_from_slice(legacy_line(event).as_bytes()),
    }
    buf.push(b'\n');
}

/// A file that is renamed to a timestamped backup when the next write (a record, kept
/// whole) would take it over `max_bytes`; old backups are removed beyond `max_backups` or
/// `max_age`. Writes are buffered until `flush`.
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    /// Written to the file, plus waiting in `pending`.
    size: u64,
    pending: Vec<u8>,
    max_bytes: u64,
    max_backups: usize,
    max_age: Duration,
}

/// Backups are `<stem>-<this>.<ext>`, in UTC, as lumberjack names them.
const BACKUP_TIME: &str = "%Y-%m-%dT%H-%M-%S%.3f";

impl RotatingFile {
    pub fn open(
        path: &Path,
        max_bytes: u64,
        max_backups: usize,
        max_age: Duration,
    ) -> crate::Result<RotatingFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            common::files::create_private_dir(dir)
                .io(|| format!("creating the audit log's directory {}", dir.display()))?;
        }
        let file = open_private(path).io(|| format!("opening the audit log {}", path.display()))?;
        let size = file
            .metadata()
            .io(|| format!("reading the audit log {}", path.display()))?
            .len();
        Ok(RotatingFile {
            path: path.to_owned(),
            file,
            size,
            pending: Vec::new(),
            max_bytes,
            max_backups,
            max_age,
        })
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.flush()?;
        let stem = self.path.file_stem().unwrap_or_default().to_string_lossy();
        let ext = self
            .path
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        let mut now = Utc::now();
        let backup = loop {
            let name = format!("{stem}-{}{ext}", now.format(BACKUP_TIME));
            let backup = self.path.with_file_name(name);
            // Two rotations within a millisecond must not overwrite a backup.
            if !backup.exists() {
                break backup;
            }
            now += chrono::Duration::milliseconds(1);
        };
        std::fs::rename(&self.path, &backup)?;
        self.file = open_private(&self.path)?;
        self.size = 0;
        self.remove_old_backups(&stem, &ext);
        Ok(())
    }

    /// Keeps the newest `max_backups` backups younger than `max_age` (0: no bound).
    fn remove_old_backups(&self, stem: &str, ext: &str) {
        let Some(dir) = self.path.parent() else {
            return;
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let prefix = format!("{stem}-");
        let mut backups: Vec<(DateTime<Utc>, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let time = name.strip_prefix(&prefix)?.strip_suffix(ext)?;
                let time = NaiveDateTime::parse_from_str(time, BACKUP_TIME).ok()?;
                Some((time.and_utc(), entry.path()))
            })
            .collect();
        backups.sort_by_key(|b| std::cmp::Reverse(b.0));
        let cutoff = (!self.max_age.is_zero())
            .then(|| DateTime::<Utc>::from(SystemTime::now() - self.max_age));
        for (i, (time, path)) in backups.iter().enumerate() {
            let too_many = self.max_backups > 0 && i >= self.max_backups;
            let too_old = cutoff.is_some_and(|c| *time < c);
            if too_many || too_old {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

impl Write for RotatingFile {
    /// Takes `buf` whole, as one record.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.pending.extend_from_slice(buf);
        self.size += buf.len() as u64;
        if self.pending.len() >= 1 << 20 {
            self.flush()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let written = self.file.write_all(&pending);
        // Kept for reuse; a failed write's records are dropped (and counted by the caller).
        self.pending = pending;
        self.pending.clear();
        written
    }
}

/// Opens for appending, created owner-only: the log names every user and may hold objects.
fn open_private(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backups(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "audit.log")
            .collect();
        names.sort();
        names
    }

    #[test]
    fn rotates_at_the_size_and_keeps_max_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/audit.log");
        let mut file = RotatingFile::open(&path, 100, 2, Duration::ZERO).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let line = [b'x'; 40];
        for _ in 0..12 {
            file.write_all(&line).unwrap();
        }
        file.flush().unwrap();
        let names = backups(path.parent().unwrap());
        assert_eq!(names.len(), 2, "{names:?}");
        for name in &names {
            let time = name
                .strip_prefix("audit-")
                .and_then(|n| n.strip_suffix(".log"))
                .unwrap();
            NaiveDateTime::parse_from_str(time, BACKUP_TIME).unwrap();
            assert_eq!(
                std::fs::metadata(path.with_file_name(name)).unwrap().len(),
                80
            );
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 80);
    }

    #[test]
    fn old_backups_go_beyond_max_age() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(dir.path().join("audit-2001-01-01T00-00-00.000.log"), "old").unwrap();
        let mut file = RotatingFile::open(&path, 10, 0, Duration::from_secs(86400)).unwrap();
        file.write_all(b"0123456789").unwrap();
        file.write_all(b"0123456789").unwrap();
        file.flush().unwrap();
        let names = backups(dir.path());
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(!names[0].starts_with("audit-2001"), "{names:?}");
    }
}
