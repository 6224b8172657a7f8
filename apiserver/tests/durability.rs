//! Acceptance item 4: under a write load, kill -9 the apiserver and restart it on the same data.
//! Every acknowledged write must be there, resourceVersions keep increasing, and a watch resumed
//! from the last resourceVersion seen misses nothing.

use crate::support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apiserver::testing::http::HttpClient;
use futures::StreamExt;
use serde_json::{Value, json};
use support::ApiServer;

const NS: &str = "/api/v1/namespaces/load/configmaps";

fn rv(obj: &Value) -> i64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_under_load_loses_no_acknowledged_write() {
    let mut server = ApiServer::start();
    let client = HttpClient::new(&server.url());
    let (code, _) = client
        .post(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "load"}}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201);
    let (_, list) = client.get(NS).await.unwrap();
    let start_rv: i64 = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // A watcher records what it sees before the crash.
    let seen = Arc::new(Mutex::new(Vec::<(i64, String)>::new()));
    let mut watch = client
        .watch(&format!("{NS}?watch=true&resourceVersion={start_rv}"))
        .await
        .unwrap();
    let watcher = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(event) = watch.next().await {
                let obj = &event["object"];
                seen.lock().unwrap().push((
                    rv(obj),
                    obj["metadata"]["name"].as_str().unwrap().to_owned(),
                ));
            }
        })
    };

    // Writers create ConfigMaps as fast as they can and record every acknowledgement.
    let acknowledged = Arc::new(Mutex::new(Vec::<(i64, String)>::new()));
    let mut writers = Vec::new();
    for w in 0..8 {
        let client = client.clone();
        let acknowledged = acknowledged.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("w{w}-{i}");
                let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"i": i.to_string()}});
                match client.post(NS, &body).await {
                    Ok((201, obj)) => acknowledged.lock().unwrap().push((rv(&obj), name)),
                    _ => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill9();
    for w in writers {
        w.await.unwrap();
    }
    watcher.abort();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 50,
        "the load made only {} writes",
        acknowledged.len()
    );
    let max_acked = acknowledged.iter().map(|(r, _)| *r).max().unwrap();

    server.restart();
    let client = HttpClient::new(&server.url());
    let (code, list) = client.get(NS).await.unwrap();
    assert_eq!(code, 200);
    let stored: BTreeSet<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    for (_, name) in &acknowledged {
        assert!(stored.contains(name), "acknowledged write {name} was lost");
    }

    // Revisions continue upward after the restart.
    let (code, obj) = client
        .post(
            NS,
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after"}}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201);
    assert!(
        rv(&obj) > max_acked,
        "resourceVersion went backwards: {} <= {max_acked}",
        rv(&obj)
    );

    // Resume the watch from the last event seen: together with what was seen before the crash,
    // it covers every stored object once, in revision order.
    let before = seen.lock().unwrap().clone();
    let resume_from = before.last().map(|(r, _)| *r).unwrap_or(start_rv);
    let mut resumed = client
        .watch(&format!("{NS}?watch=true&resourceVersion={resume_from}"))
        .await
        .unwrap();
    let mut all = before.clone();
    let expected = stored.len() + 1;
    while all.len() < expected {
        let event = tokio::time::timeout(Duration::from_secs(10), resumed.next())
            .await
            .expect("the resumed watch delivers the rest")
            .expect("the watch stays open");
        assert_eq!(event["type"], "ADDED", "{event}");
        let obj = &event["object"];
        all.push((
            rv(obj),
            obj["metadata"]["name"].as_str().unwrap().to_owned(),
        ));
    }
    assert!(
        all.windows(2).all(|w| w[0].0 < w[1].0),
        "watch events are in revision order without repeats"
    );
    let watched: BTreeSet<String> = all.iter().map(|(_, n)| n.clone()).collect();
    let mut expected_names = stored.clone();
    expected_names.insert("after".into());
    assert_eq!(
        watched, expected_names,
        "the watch missed or invented objects"
    );
}
