//! The store conformance suite: every behaviour the apiserver relies on, run against each backend
//! (the embedded SQLite store and a real etcd started by the test).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use super::{Error, EventType, RangeOptions, Revision, Store, sqlite::SqliteStore};
use crate::testing::EtcdServer;

/// Keeps a backend's resources alive for one test.
enum Guard {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Etcd(#[allow(dead_code)] EtcdServer),
}

async fn sqlite() -> (Arc<dyn Store>, Guard) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("state.db")).unwrap();
    (Arc::new(store), Guard::Dir(dir))
}

async fn etcd() -> (Arc<dyn Store>, Guard) {
    let server = tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .unwrap();
    let store = super::etcd::EtcdStore::connect(std::slice::from_ref(&server.endpoint))
        .await
        .unwrap();
    (Arc::new(store), Guard::Etcd(server))
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = super::sqlite().await;
                super::$name(store).await;
            })*
        }
        mod etcd_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = super::etcd().await;
                super::$name(store).await;
            })*
        }
    };
}

conformance!(
    create_then_get,
    update_is_guarded_by_mod_revision,
    delete_is_guarded_and_keys_can_be_recreated,
    range_reads_a_prefix_in_key_order_at_a_revision,
    range_pages_with_limit_and_start_key,
    range_refuses_a_start_key_outside_its_prefix,
    watch_replays_history_then_follows_live_writes,
    watch_under_concurrent_writes_has_no_gaps,
    only_one_of_racing_updates_wins,
    compaction_makes_old_revisions_too_old,
);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn create_then_get(store: Arc<dyn Store>) {
    let before = store.current_revision().await.unwrap();
    let kv = store.create("/t/a", b("1")).await.unwrap();
    assert!(kv.mod_revision > before);
    assert_eq!(kv.create_revision, kv.mod_revision);
    assert_eq!(store.current_revision().await.unwrap(), kv.mod_revision);

    let got = store.get("/t/a").await.unwrap().unwrap();
    assert_eq!(got, kv);
    assert!(store.get("/t/missing").await.unwrap().is_none());

    let err = store.create("/t/a", b("2")).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    assert_eq!(store.get("/t/a").await.unwrap().unwrap().value, b("1"));
}

async fn update_is_guarded_by_mod_revision(store: Arc<dyn Store>) {
    let created = store.create("/t/a", b("1")).await.unwrap();
    let updated = store
        .update("/t/a", b("2"), created.mod_revision)
        .await
        .unwrap();
    assert!(updated.mod_revision > created.mod_revision);
    assert_eq!(updated.create_revision, created.create_revision);
    assert_eq!(updated.value, b("2"));

    match store
        .update("/t/a", b("3"), created.mod_revision)
        .await
        .unwrap_err()
    {
        Error::Conflict { current, .. } => assert_eq!(*current, updated),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let err = store.update("/t/none", b("x"), 1).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    assert_eq!(store.get("/t/a").await.unwrap().unwrap().value, b("2"));
}

async fn delete_is_guarded_and_keys_can_be_recreated(store: Arc<dyn Store>) {
    let created = store.create("/t/a", b("1")).await.unwrap();
    let updated = store
        .update("/t/a", b("2"), created.mod_revision)
        .await
        .unwrap();
    match store
        .delete("/t/a", Some(created.mod_revision))
        .await
        .unwrap_err()
    {
        Error::Conflict { current, .. } => assert_eq!(*current, updated),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let (prev, rev) = store
        .delete("/t/a", Some(updated.mod_revision))
        .await
        .unwrap();
    assert_eq!(prev, updated);
    assert!(rev > updated.mod_revision);
    assert!(store.get("/t/a").await.unwrap().is_none());
    let err = store.delete("/t/a", None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");

    let again = store.create("/t/a", b("3")).await.unwrap();
    assert!(again.create_revision > rev);
    let (prev, _) = store.delete("/t/a", None).await.unwrap();
    assert_eq!(prev.value, b("3"));
}

async fn range_reads_a_prefix_in_key_order_at_a_revision(store: Arc<dyn Store>) {
    for key in ["/t/b/2", "/t/b/1", "/t/a/1", "/t/c"] {
        store.create(key, b(key)).await.unwrap();
    }
    let at = store.current_revision().await.unwrap();
    let kv = store.get("/t/b/1").await.unwrap().unwrap();
    store
        .update("/t/b/1", b("new"), kv.mod_revision)
        .await
        .unwrap();
    store.delete("/t/b/2", None).await.unwrap();
    store.create("/t/b/3", b("3")).await.unwrap();

    let keys = |r: &super::RangeResult| r.kvs.iter().map(|k| k.key.clone()).collect::<Vec<_>>();
    let now = store.range("/t/b/", RangeOptions::default()).await.unwrap();
    assert_eq!(keys(&now), ["/t/b/1", "/t/b/3"]);
    assert_eq!(now.kvs[0].value, b("new"));
    assert_eq!(now.revision, store.current_revision().await.unwrap());
    assert!(!now.more);

    let then = store
        .range(
            "/t/b/",
            RangeOptions {
                revision: at,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(keys(&then), ["/t/b/1", "/t/b/2"]);
    assert_eq!(then.kvs[0].value, b("/t/b/1"));
    assert_eq!(then.revision, at);

    let all = store.range("/t/", RangeOptions::default()).await.unwrap();
    assert_eq!(keys(&all), ["/t/a/1", "/t/b/1", "/t/b/3", "/t/c"]);
}

async fn range_pages_with_limit_and_start_key(store: Arc<dyn Store>) {
    for i in 0..7 {
        store.create(&format!("/t/k{i}"), b("v")).await.unwrap();
    }
    let at = store.current_revision().await.unwrap();
    store.create("/t/k7", b("late")).await.unwrap();

    let mut seen = Vec::new();
    let mut start = None;
    loop {
        let opts = RangeOptions {
            revision: at,
            start_key: start.clone(),
            limit: 3,
        };
        let page = store.range("/t/", opts).await.unwrap();
        assert!(page.kvs.len() <= 3);
        seen.extend(page.kvs.iter().map(|k| k.key.clone()));
        if !page.more {
            break;
        }
        start = Some(format!("{}\0", page.kvs.last().unwrap().key));
    }
    let expected: Vec<String> = (0..7).map(|i| format!("/t/k{i}")).collect();
    assert_eq!(
        seen, expected,
        "pages at one revision see neither gaps nor later writes"
    );
}

async fn range_refuses_a_start_key_outside_its_prefix(store: Arc<dyn Store>) {
    store.create("/t/secrets/s1", b("secret")).await.unwrap();
    store.create("/t/serviceaccounts/a", b("sa")).await.unwrap();
    // A start key below the prefix would otherwise read /t/secrets/ on the way up to it.
    for start in ["/t/", "/t/secrets/", "/", "", "/t/serviceaccount"] {
        let opts = RangeOptions {
            start_key: Some(start.into()),
            ..RangeOptions::default()
        };
        match store.range("/t/serviceaccounts/", opts).await {
            Err(crate::storage::Error::OutOfRange { .. }) => {}
            other => panic!("start {start:?}: expected OutOfRange, got {other:?}"),
        }
    }
    // Positive control: a start key within the prefix reads from there.
    let opts = RangeOptions {
        start_key: Some("/t/serviceaccounts/a".into()),
        ..RangeOptions::default()
    };
    let page = store.range("/t/serviceaccounts/", opts).await.unwrap();
    assert_eq!(page.kvs.len(), 1);
    assert_eq!(page.kvs[0].value, b("sa"));
}

async fn watch_replays_history_then_follows_live_writes(store: Arc<dyn Store>) {
    let start = store.current_revision().await.unwrap();
    let a = store.create("/t/w/a", b("1")).await.unwrap();
    store.create("/t/other", b("x")).await.unwrap();
    let a2 = store
        .update("/t/w/a", b("2"), a.mod_revision)
        .await
        .unwrap();

    let mut watch = store.watch("/t/w/", start).await.unwrap();
    let e1 = next(&mut watch).await;
    assert_eq!(
        (e1.event_type, e1.kv.clone(), e1.prev.clone()),
        (EventType::Put, a.clone(), None)
    );
    let e2 = next(&mut watch).await;
    assert_eq!(e2.event_type, EventType::Put);
    assert_eq!(e2.kv, a2);
    assert_eq!(e2.prev.as_ref().unwrap().value, b("1"));

    let (_, del_rev) = store.delete("/t/w/a", None).await.unwrap();
    let b1 = store.create("/t/w/b", b("b")).await.unwrap();
    let e3 = next(&mut watch).await;
    assert_eq!(e3.event_type, EventType::Delete);
    assert_eq!(e3.kv.key, "/t/w/a");
    assert_eq!(e3.revision(), del_rev);
    assert_eq!(e3.prev.as_ref().unwrap().value, b("2"));
    let e4 = next(&mut watch).await;
    assert_eq!(e4.kv, b1);

    // Watching from the middle of history starts right after that revision.
    let mut watch = store.watch("/t/w/", a2.mod_revision).await.unwrap();
    assert_eq!(next(&mut watch).await.revision(), del_rev);
}

async fn watch_under_concurrent_writes_has_no_gaps(store: Arc<dyn Store>) {
    const WRITERS: usize = 4;
    const EACH: usize = 50;
    let start = store.current_revision().await.unwrap();
    let mut watch = store.watch("/t/", start).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..EACH {
                revs.push(
                    store
                        .create(&format!("/t/{w}/{i}"), b("v"))
                        .await
                        .unwrap()
                        .mod_revision,
                );
            }
            revs
        }));
    }
    let mut acknowledged: Vec<Revision> = Vec::new();
    for t in tasks {
        acknowledged.extend(t.await.unwrap());
    }
    acknowledged.sort();
    let mut seen = Vec::new();
    while seen.len() < WRITERS * EACH {
        seen.push(next(&mut watch).await.revision());
    }
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "revision order");
    assert_eq!(
        seen, acknowledged,
        "every acknowledged write is watched once"
    );
}

async fn only_one_of_racing_updates_wins(store: Arc<dyn Store>) {
    let kv = store.create("/t/race", b("0")).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let rev = kv.mod_revision;
        tasks.push(tokio::spawn(async move {
            store.update("/t/race", b(&i.to_string()), rev).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(Error::Conflict { .. }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(wins, 1);
}

async fn compaction_makes_old_revisions_too_old(store: Arc<dyn Store>) {
    let kv = store.create("/t/a", b("1")).await.unwrap();
    let old = kv.mod_revision;
    let mut last = kv;
    for i in 0..5 {
        last = store
            .update("/t/a", b(&i.to_string()), last.mod_revision)
            .await
            .unwrap();
    }
    store.create("/t/b", b("b")).await.unwrap();
    let compact_to = store.current_revision().await.unwrap() - 1;
    store.compact(compact_to).await.unwrap();

    let err = store
        .range(
            "/t/",
            RangeOptions {
                revision: old,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Compacted { .. }), "{err:?}");
    match store.watch("/t/", old).await {
        Err(Error::Compacted { .. }) => {}
        Err(e) => panic!("unexpected {e:?}"),
        Ok(mut watch) => {
            let item = tokio::time::timeout(Duration::from_secs(10), watch.next())
                .await
                .unwrap();
            assert!(
                matches!(item, Some(Err(Error::Compacted { .. }))),
                "{item:?}"
            );
        }
    }
    // The latest state and the compaction revision itself stay readable.
    let now = store.range("/t/", RangeOptions::default()).await.unwrap();
    assert_eq!(now.kvs.len(), 2);
    assert_eq!(now.kvs[0], last);
    let at = store
        .range(
            "/t/",
            RangeOptions {
                revision: compact_to,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(at.kvs.len(), 1);
    let mut watch = store.watch("/t/", compact_to).await.unwrap();
    assert_eq!(next(&mut watch).await.kv.key, "/t/b");
}

async fn next(watch: &mut super::WatchStream) -> super::Event {
    tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("a watch event within 10 s")
        .expect("the watch stream is open")
        .expect("no watch error")
}
