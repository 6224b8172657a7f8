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
) -> anyhow::Result<Arc<dyn Plugin>> {
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
