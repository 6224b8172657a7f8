//! The etcd backend (`--etcd-servers`): the store trait mapped onto etcd's v3 API, one
//! request per operation (Txn with a compare on mod_revision for guarded writes).

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, EventType as EtcdEventType, GetOptions, Txn,
    TxnOp, TxnOpResponse, WatchOptions,
};
use futures::StreamExt;

use super::{
    Error, Event, EventType, KeyValue, RangeOptions, RangeResult, Result, Revision, Store,
    WatchStream,
};

/// A store in an etcd cluster. Clones share one gRPC channel.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
}

impl EtcdStore {
    /// Connects to the comma-separated `--etcd-servers` endpoints.
    pub async fn connect(endpoints: &[String]) -> Result<Self> {
        let endpoints: Vec<String> = endpoints
            .iter()
            .map(|e| e.trim_start_matches("http://").to_owned())
            .collect();
        let client = Client::connect(&endpoints, None).await.map_err(map_err)?;
        Ok(EtcdStore { client })
    }
}

fn map_err(e: etcd_client::Error) -> Error {
    match &e {
        etcd_client::Error::GRpcStatus(status) if status.message().contains("compacted") => {
            Error::Compacted {
                requested: 0,
                compacted: 0,
            }
        }
        etcd_client::Error::GRpcStatus(status) if status.message().contains("future revision") => {
            Error::FutureRevision {
                requested: 0,
                current: 0,
            }
        }
        _ => Error::Unavailable(e.to_string()),
    }
}

fn convert(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    Ok(KeyValue {
        key: kv.key_str().map_err(map_err)?.to_owned(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    })
}

/// The current value carried in a failed Txn's `or_else` get.
fn current_from(responses: Vec<TxnOpResponse>, key: &str) -> Result<KeyValue> {
    for response in responses {
        if let TxnOpResponse::Get(get) = response
            && let Some(kv) = get.kvs().first()
        {
            return convert(kv);
        }
    }
    Err(Error::NotFound(key.to_owned()))
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Revision {
    header.map(|h| h.revision()).unwrap_or_default()
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let resp = self
            .client
            .kv_client()
            .get(key, None)
            .await
            .map_err(map_err)?;
        resp.kvs().first().map(convert).transpose()
    }

    async fn range(&self, prefix: &str, opts: RangeOptions) -> Result<RangeResult> {
        let start = super::range_start(prefix, &opts)?;
        let mut get = GetOptions::new().with_range(range_end(prefix));
        if opts.revision != 0 {
            get = get.with_revision(opts.revision);
        }
        if opts.limit != 0 {
            get = get.with_limit(opts.limit as i64);
        }
        let resp = self
            .client
            .kv_client()
            .get(start, Some(get))
            .await
            .map_err(|e| with_requested(map_err(e), opts.revision))?;
        let kvs = resp.kvs().iter().map(convert).collect::<Result<Vec<_>>>()?;
        // etcd's header carries its current revision; the read was served at the requested one.
        let revision = match opts.revision {
            0 => header_revision(resp.header()),
            r => r,
        };
        Ok(RangeResult {
            kvs,
            revision,
            more: resp.more(),
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.to_vec(), None)]);
        let resp = self.client.kv_client().txn(txn).await.map_err(map_err)?;
        if !resp.succeeded() {
            return Err(Error::AlreadyExists(key.to_owned()));
        }
        let rev = header_revision(resp.header());
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision: rev,
            mod_revision: rev,
        })
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then([TxnOp::put(key, value.to_vec(), None), TxnOp::get(key, None)])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.client.kv_client().txn(txn).await.map_err(map_err)?;
        let succeeded = resp.succeeded();
        let current = current_from(resp.op_responses(), key)?;
        if !succeeded {
            return Err(Error::Conflict {
                key: key.to_owned(),
                current: Box::new(current),
            });
        }
        Ok(current)
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision)> {
        let delete = TxnOp::delete(key, Some(etcd_client::DeleteOptions::new().with_prev_key()));
        let txn = match expected {
            Some(rev) => Txn::new()
                .when([Compare::mod_revision(key, CompareOp::Equal, rev)])
                .and_then([delete])
                .or_else([TxnOp::get(key, None)]),
            None => Txn::new()
                .when([Compare::create_revision(key, CompareOp::Greater, 0)])
                .and_then([delete]),
        };
        let resp = self.client.kv_client().txn(txn).await.map_err(map_err)?;
        let revision = header_revision(resp.header());
        if !resp.succeeded() {
            let current = current_from(resp.op_responses(), key)?;
            return Err(Error::Conflict {
                key: key.to_owned(),
                current: Box::new(current),
            });
        }
        for response in resp.op_responses() {
            if let TxnOpResponse::Delete(del) = response
                && let Some(prev) = del.prev_kvs().first()
            {
                return Ok((convert(prev)?, revision));
            }
        }
        Err(Error::NotFound(key.to_owned()))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let opts = WatchOptions::new()
            .with_range(range_end(prefix))
            .with_start_revision(after + 1)
            .with_prev_key();
        let stream = self
            .client
            .watch_client()
            .watch(prefix, Some(opts))
            .await
            .map_err(map_err)?;
        let events = stream
            .map(move |resp| -> Vec<Result<Event>> {
                let resp = match resp {
                    Ok(r) => r,
                    Err(e) => return vec![Err(map_err(e))],
                };
                if resp.canceled() {
                    let compacted = resp.compact_revision();
                    if compacted > 0 {
                        return vec![Err(Error::Compacted {
                            requested: after,
                            compacted,
                        })];
                    }
                    return vec![Err(Error::Unavailable(format!(
                        "etcd canceled the watch: {}",
                        resp.cancel_reason()
                    )))];
                }
                resp.events().iter().map(convert_event).collect()
            })
            .flat_map(futures::stream::iter)
            // An error ends the watch, as the trait promises.
            .scan(false, |failed, item| {
                if *failed {
                    return futures::future::ready(None);
                }
                *failed = item.is_err();
                futures::future::ready(Some(item))
            });
        Ok(Box::pin(events))
    }

    async fn current_revision(&self) -> Result<Revision> {
        let opts = GetOptions::new().with_count_only();
        let resp = self
            .client
            .kv_client()
            .get("/", Some(opts))
            .await
            .map_err(map_err)?;
        Ok(header_revision(resp.header()))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.client
            .kv_client()
            .compact(revision, Some(CompactionOptions::new().with_physical()))
            .await
            .map_err(|e| with_requested(map_err(e), revision))?;
        Ok(())
    }
}

fn convert_event(event: &etcd_client::Event) -> Result<Event> {
    let kv = event
        .kv()
        .ok_or_else(|| Error::Unavailable("etcd sent an event without a key".into()))?;
    let mut kv = convert(kv)?;
    let prev = event.prev_kv().map(convert).transpose()?;
    let event_type = match event.event_type() {
        EtcdEventType::Put => EventType::Put,
        EtcdEventType::Delete => {
            kv.create_revision = prev.as_ref().map(|p| p.create_revision).unwrap_or_default();
            EventType::Delete
        }
    };
    Ok(Event {
        event_type,
        kv,
        prev,
    })
}

/// etcd's range end for a prefix: the prefix with its last byte incremented.
fn range_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // An empty (or all-0xff) prefix: every key.
    vec![0]
}

/// Fills in the revision a Compacted/FutureRevision error was about.
fn with_requested(err: Error, requested: Revision) -> Error {
    match err {
        Error::Compacted { compacted, .. } => Error::Compacted {
            requested,
            compacted,
        },
        Error::FutureRevision { current, .. } => Error::FutureRevision { requested, current },
        other => other,
    }
}
