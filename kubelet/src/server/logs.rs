//! /containerLogs/NAMESPACE/POD/CONTAINER: a container's log file (CRI format, one record per
//! line: `TIME STREAM P|F CONTENT`) turned back into its output, with upstream's options:
//! follow, previous, timestamps, tailLines, sinceSeconds, sinceTime and limitBytes.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use k8s_cri::v1 as cri;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{Kubelet, error, flag, query_pairs};

/// What the client asked for.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
    pub since: Option<DateTime<Utc>>,
    pub limit_bytes: Option<usize>,
}

impl LogOptions {
    pub fn parse(query: &str) -> Result<LogOptions, String> {
        let mut o = LogOptions::default();
        for (k, v) in query_pairs(query) {
            let number = |v: &str| {
                v.parse::<i64>()
                    .map_err(|_| format!("{k}: {v:?} is not an integer"))
            };
            match k.as_str() {
                "follow" => o.follow = flag(&v),
                "previous" => o.previous = flag(&v),
                "timestamps" => o.timestamps = flag(&v),
                "tailLines" => o.tail_lines = Some(number(&v)?.max(0) as usize),
                "limitBytes" => o.limit_bytes = Some(number(&v)?.max(1) as usize),
                "sinceSeconds" => {
                    o.since = Some(Utc::now() - chrono::Duration::seconds(number(&v)?.max(0)));
                }
                "sinceTime" => {
                    let t = DateTime::parse_from_rfc3339(&v)
                        .map_err(|e| format!("sinceTime: {v:?}: {e}"))?;
                    o.since = Some(t.with_timezone(&Utc));
                }
                _ => {}
            }
        }
        Ok(o)
    }
}

/// One CRI log record: `2016-10-06T00:17:09.669794202Z stdout F hello`.
#[derive(Debug, PartialEq)]
pub struct Record<'a> {
    pub time: &'a str,
    /// The content; a full record ("F") ends its line, a partial ("P") continues on the next.
    pub content: &'a [u8],
    pub partial: bool,
}

pub fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let mut fields = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(fields.next()?).ok()?;
    let _stream = fields.next()?;
    let tag = fields.next()?;
    Some(Record {
        time,
        content: fields.next().unwrap_or_default(),
        partial: tag == b"P",
    })
}

/// Turns log file bytes into output lines, keeping the unfinished tail for the next call.
#[derive(Default)]
struct Decoder {
    pending: Vec<u8>,
    /// The content of partial records waiting for their full one.
    joined: Vec<u8>,
}

impl Decoder {
    fn feed(&mut self, data: &[u8], opts: &LogOptions, out: &mut Vec<Vec<u8>>) {
        self.pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = self.pending[start..].iter().position(|b| *b == b'\n') {
            let line = &self.pending[start..start + nl];
            start += nl + 1;
            let Some(r) = parse_record(line) else {
                continue;
            };
            if let Some(since) = opts.since {
                let at = DateTime::parse_from_rfc3339(r.time).map(|t| t.with_timezone(&Utc));
                if at.is_ok_and(|t| t < since) {
                    continue;
                }
            }
            if self.joined.is_empty() && opts.timestamps {
                self.joined.extend_from_slice(r.time.as_bytes());
                self.joined.push(b' ');
            }
            self.joined.extend_from_slice(r.content);
            if !r.partial {
                self.joined.push(b'\n');
                out.push(std::mem::take(&mut self.joined));
            }
        }
        self.pending.drain(..start);
    }
}

/// The log of `container` in `namespace/pod`.
pub async fn container_logs(
    State(k): State<Arc<Kubelet>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let opts = match LogOptions::parse(query.as_deref().unwrap_or("")) {
        Ok(o) => o,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let pod_obj = match k.pod(&namespace, &pod) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let uid = pod_obj.metadata.uid.clone().unwrap_or_default();
    let runs = match k.runtime.container_runs(&uid, &container).await {
        Ok(r) => r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    };
    let run = if opts.previous {
        runs.get(1)
    } else {
        runs.first()
    };
    let Some(run) = run.cloned() else {
        if opts.previous {
            return error(
                StatusCode::BAD_REQUEST,
                format!("previous terminated container {container:?} in pod {pod:?} not found"),
            );
        }
        let reason = waiting_reason(&pod_obj, &container);
        return error(
            StatusCode::BAD_REQUEST,
            format!("container {container:?} in pod {pod:?} is waiting to start: {reason}"),
        );
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(stream_log(k, run, opts, tx));
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    ([("content-type", "text/plain")], body).into_response()
}

/// Why the container has not started, as the pod's status says (ContainerCreating if it
/// says nothing yet).
fn waiting_reason(pod: &k8s_openapi::api::core::v1::Pod, container: &str) -> String {
    let status = pod.status.as_ref();
    status
        .into_iter()
        .flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
        })
        .find(|c| c.name == container)
        .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
        .unwrap_or_else(|| "ContainerCreating".into())
}

/// Sends the log, then (when following) what is appended until the container stops or the
/// client goes away.
async fn stream_log(
    k: Arc<Kubelet>,
    run: cri::ContainerStatus,
    opts: LogOptions,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let path = PathBuf::from(&run.log_path);
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.send(Err(e)).await;
            return;
        }
    };
    let mut decoder = Decoder::default();
    let mut budget = opts.limit_bytes.unwrap_or(usize::MAX);
    let mut data = Vec::new();
    if file.read_to_end(&mut data).await.is_err() {
        return;
    }
    let mut lines = Vec::new();
    decoder.feed(&data, &opts, &mut lines);
    if let Some(n) = opts.tail_lines {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    let mut queue: VecDeque<Vec<u8>> = lines.into();
    let mut offset = data.len() as u64;
    let mut last_check = tokio::time::Instant::now();
    loop {
        while let Some(mut line) = queue.pop_front() {
            line.truncate(budget);
            budget -= line.len();
            if tx.send(Ok(Bytes::from(line))).await.is_err() || budget == 0 {
                return;
            }
        }
        if !opts.follow {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut more = Vec::new();
        if file.seek(std::io::SeekFrom::Start(offset)).await.is_err()
            || file.read_to_end(&mut more).await.is_err()
        {
            return;
        }
        offset += more.len() as u64;
        let mut lines = Vec::new();
        decoder.feed(&more, &opts, &mut lines);
        queue.extend(lines);
        if more.is_empty() && last_check.elapsed() > Duration::from_secs(1) {
            last_check = tokio::time::Instant::now();
            let running = k
                .runtime
                .cri
                .container_status(&run.id)
                .await
                .is_ok_and(|s| s.state == cri::ContainerState::ContainerRunning as i32);
            if !running || tx.is_closed() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(log: &str, opts: &LogOptions) -> String {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        // Fed in two pieces to check records split across reads.
        let (a, b) = log.as_bytes().split_at(log.len() / 2);
        d.feed(a, opts, &mut out);
        d.feed(b, opts, &mut out);
        String::from_utf8(out.concat()).unwrap()
    }

    const LOG: &str = "2026-01-01T00:00:01.000000001Z stdout F hello\n\
                       2026-01-01T00:00:02Z stderr P par\n\
                       2026-01-01T00:00:02.5Z stderr F tial\n\
                       2026-01-01T00:00:03Z stdout F \n";

    #[test]
    fn records_become_lines() {
        assert_eq!(decode(LOG, &LogOptions::default()), "hello\npartial\n\n");
        let ts = LogOptions {
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            decode(LOG, &ts),
            "2026-01-01T00:00:01.000000001Z hello\n2026-01-01T00:00:02Z partial\n2026-01-01T00:00:03Z \n"
        );
        let since = LogOptions {
            since: Some("2026-01-01T00:00:02Z".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(decode(LOG, &since), "partial\n\n");
    }

    #[test]
    fn options_parse() {
        let o = LogOptions::parse("follow=true&tailLines=2&timestamps=1&limitBytes=10").unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(2), Some(10)));
        assert!(LogOptions::parse("tailLines=x").is_err());
        assert!(LogOptions::parse("sinceTime=yesterday").is_err());
    }
}
