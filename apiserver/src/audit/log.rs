//! The log backend (`--audit-log-path`): one event per line, JSON or upstream's legacy text,
//! written by a thread of its own into a file rotated as lumberjack rotates upstream's
//! (`<name>-<UTC time>.<ext>` backups, gzipped with `--audit-log-compress`, bounded in number
//! and age; mode 0600).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, NaiveDateTime, Utc};
use common::error::Context as _;

use super::event::{Event, legacy_line};
use super::queue::{self, Queue};
use super::truncate::{self, Throttle, Truncate};

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
    /// Gzip rotated files (`--audit-log-compress`).
    pub compress: bool,
    /// With `--audit-log-truncate-enabled` (JSON only: legacy lines carry no objects).
    pub truncate: Option<Truncate>,
    /// In `--audit-log-mode batch`: events per write (`--audit-log-batch-max-size`; the
    /// writer otherwise takes up to 10,000 waiting events at once) and the throttle of writes.
    pub batch: Option<Batch>,
}

/// `--audit-log-batch-max-size` and `--audit-log-batch-throttle-*`.
#[derive(Clone, Debug)]
pub struct Batch {
    pub max_size: usize,
    pub throttle_enable: bool,
    pub throttle_qps: f64,
    pub throttle_burst: usize,
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
            compress: false,
            truncate: None,
            batch: None,
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
        Box::new(
            RotatingFile::open(
                &config.path,
                max_mb << 20,
                config.max_backups,
                Duration::from_secs(config.max_age_days * 24 * 3600),
            )?
            .compressed(config.compress),
        )
    };
    let (queue, mut events) = queue::bounded("log", config.buffer_size);
    let format = config.format;
    let truncate = config.truncate.filter(|_| format == Format::Json);
    let max_batch = config.batch.as_ref().map_or(10_000, |b| b.max_size.max(1));
    let mut throttle = config
        .batch
        .as_ref()
        .and_then(|b| Throttle::new(b.throttle_enable, b.throttle_qps, b.throttle_burst));
    std::thread::Builder::new()
        .name("audit-log".into())
        .spawn(move || {
            let mut line = Vec::with_capacity(4 << 10);
            while let Some(first) = events.blocking_recv() {
                // Everything already waiting goes out together, one line per write call (a
                // record: rotation never splits a line) and one flush.
                let mut count = 0;
                let mut failed = false;
                let mut dropped = 0;
                let mut next = Some(first);
                if let Some(throttle) = &mut throttle {
                    std::thread::sleep(throttle.take());
                }
                while let Some(event) = next {
                    if encode(&event, format, truncate.as_ref(), &mut line) {
                        failed |= out.write_all(&line).is_err();
                    } else {
                        dropped += 1;
                    }
                    line.clear();
                    count += 1;
                    next = if count < max_batch {
                        events.try_recv()
                    } else {
                        None
                    };
                }
                events.failed(dropped);
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

/// The event's line into `buf`; false when truncation drops it.
fn encode(event: &Event, format: Format, truncate: Option<&Truncate>, buf: &mut Vec<u8>) -> bool {
    match format {
        Format::Json => match truncate::encode(event, truncate) {
            Some(json) => buf.extend_from_slice(&json),
            None => return false,
        },
        Format::Legacy => buf.extend_from_slice(legacy_line(event).as_bytes()),
    }
    buf.push(b'\n');
    true
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
    compress: bool,
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
            compress: false,
        })
    }

    /// Gzips each backup after rotation (`<backup>.gz`), off the writer's thread.
    pub fn compressed(mut self, compress: bool) -> RotatingFile {
        self.compress = compress;
        self
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
        let retention = Retention {
            path: self.path.clone(),
            stem: stem.into_owned(),
            ext,
            max_backups: self.max_backups,
            max_age: self.max_age,
        };
        if self.compress {
            // Old backups are counted once this one is compressed (lumberjack does the same).
            std::thread::spawn(move || {
                if let Err(e) = gzip(&backup) {
                    tracing::error!(path = %backup.display(), error = %e, "compressing an audit log backup");
                }
                retention.remove_old_backups();
            });
        } else {
            retention.remove_old_backups();
        }
        Ok(())
    }
}

/// Which backups of a log are kept.
struct Retention {
    path: PathBuf,
    stem: String,
    ext: String,
    max_backups: usize,
    max_age: Duration,
}

impl Retention {
    /// Keeps the newest `max_backups` backups younger than `max_age` (0: no bound).
    fn remove_old_backups(&self) {
        let (stem, ext) = (&self.stem, self.ext.as_str());
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
                let rest = name.strip_prefix(&prefix)?;
                let time = rest.strip_suffix(".gz").unwrap_or(rest).strip_suffix(ext)?;
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

/// Replaces `path` with `path.gz` (owner-only, as the log).
fn gzip(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut gz_name = path.as_os_str().to_owned();
    gz_name.push(".gz");
    let target = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&gz_name)?;
    let mut encoder = flate2::write::GzEncoder::new(target, flate2::Compression::default());
    std::io::copy(&mut File::open(path)?, &mut encoder)?;
    encoder.finish()?.sync_all()?;
    std::fs::remove_file(path)
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
