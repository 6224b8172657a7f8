//! Plugin names to factories: a profile names plugins, the registry builds them with their
//! pluginConfig args.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Handle, Plugin};

/// Builds a plugin from its args (`pluginConfig[].args`, None for the defaults).
pub type Factory =
    fn(args: Option<&serde_json::Value>, handle: &Arc<Handle>) -> crate::Result<Arc<dyn Plugin>>;

/// Decodes a plugin's `pluginConfig[].args` (absent: the defaults); errors name the args
/// kind, as upstream's validation does.
pub fn decode_args<A: serde::de::DeserializeOwned + Default>(
    args: Option<&serde_json::Value>,
    kind: &str,
) -> crate::Result<A> {
    match args {
        Some(a) => serde::Deserialize::deserialize(a)
            .map_err(|e| crate::Error::Invalid(format!("{kind}: {e}"))),
        None => Ok(A::default()),
    }
}

/// The plugins a scheduler can run, by name.
#[derive(Clone, Default)]
pub struct Registry {
    factories: HashMap<&'static str, Factory>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Every in-tree plugin.
    pub fn in_tree() -> Registry {
        let mut r = Registry::new();
        for (name, factory) in crate::plugins::FACTORIES {
            r.register(name, *factory);
        }
        r
    }

    pub fn register(&mut self, name: &'static str, factory: Factory) {
        self.factories.insert(name, factory);
    }

    pub fn build(
        &self,
        name: &str,
        args: Option<&serde_json::Value>,
        handle: &Arc<Handle>,
    ) -> crate::Result<Arc<dyn Plugin>> {
        let factory = self
            .factories
            .get(name)
            .ok_or_else(|| crate::Error::Invalid(format!("plugin {name:?} does not exist")))?;
        factory(args, handle)
    }
}
