//! DefaultBinder: binds the pod through the API (the pods/binding subresource).

use std::sync::Arc;

use async_trait::async_trait;

use crate::framework::{BindPlugin, Handle, Plugin, PodInfo, Status};

pub const NAME: &str = "DefaultBinder";

pub struct DefaultBinder {
    handle: Arc<Handle>,
}

pub fn factory(
    _: Option<&serde_json::Value>,
    handle: &Arc<Handle>,
) -> crate::Result<Arc<dyn Plugin>> {
    Ok(Arc::new(DefaultBinder {
        handle: handle.clone(),
    }))
}

impl Plugin for DefaultBinder {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        Some(self)
    }
}

#[async_trait]
impl BindPlugin for DefaultBinder {
    async fn bind(&self, pod: &PodInfo, node: &str) -> Status {
        match self.handle.client.bind(pod, node).await {
            Ok(()) => Status::success(),
            Err(e) => Status::error(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::{ClusterClient, Code};
    use crate::testing::make_pod;
    use parking_lot::Mutex;

    /// Records bindings; refuses pods named "refused".
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(String, String)>>);

    #[async_trait]
    impl ClusterClient for Recorder {
        async fn bind(&self, pod: &PodInfo, node: &str) -> Result<(), String> {
            if pod.name == "refused" {
                return Err("pods \"refused\" not found".into());
            }
            self.0.lock().push((pod.key(), node.to_owned()));
            Ok(())
        }
        async fn delete_pod(&self, _: &PodInfo) -> Result<(), String> {
            Ok(())
        }
        async fn nominate(&self, _: &PodInfo, _: &str) -> Result<(), String> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn binds_through_the_client_and_reports_failures_as_errors() {
        let client = Arc::new(Recorder::default());
        let binder = DefaultBinder {
            handle: Arc::new(Handle {
                client: client.clone(),
            }),
        };
        assert!(
            binder
                .bind(&make_pod("web").info(), "n1")
                .await
                .is_success()
        );
        assert_eq!(
            *client.0.lock(),
            vec![("default/web".to_owned(), "n1".to_owned())]
        );
        let s = binder.bind(&make_pod("refused").info(), "n1").await;
        assert_eq!(
            (s.code, s.message()),
            (Code::Error, "pods \"refused\" not found".to_owned())
        );
    }
}
