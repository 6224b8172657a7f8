//! What a few kinds do around a write with the server's state, beyond their strategy's pure
//! rules: upstream's BeforeCreate/AfterCreate/AfterDelete and the extras of their REST
//! storage. Services take their ClusterIPs and node ports from the allocators and give them
//! back when deleted; Namespaces keep the set of terminating namespaces that admission reads
//! and refuse deletion of the ones the system needs.

use serde_json::Value;

use crate::services::{self, Allocation};
use crate::state::ApiState;
use crate::status::{ApiError, ApiResult};

/// Every method has the default of a kind with no hooks.
pub trait Hooks: Sync + Send {
    /// Before an object is validated and written (`old` on update): what it takes from
    /// shared pools, kept if the write succeeds and given back if it is dropped.
    fn reserve(
        &self,
        _state: &ApiState,
        _obj: &mut Value,
        _old: Option<&Value>,
    ) -> ApiResult<Option<Allocation>> {
        Ok(None)
    }
    /// After `obj` was created.
    fn created(&self, _state: &ApiState, _obj: &Value) {}
    /// Before a delete of `name` is tried.
    fn may_delete(&self, _state: &ApiState, _name: &str) -> ApiResult<()> {
        Ok(())
    }
    /// After `obj` was marked terminating by a delete.
    fn terminating(&self, _state: &ApiState, _obj: &Value) {}
    /// After `obj` was removed from the store.
    fn removed(&self, _state: &ApiState, _obj: &Value) {}
}

/// Most kinds.
pub struct NoHooks;
pub static NONE: NoHooks = NoHooks;
impl Hooks for NoHooks {}

pub struct ServiceHooks;
pub static SERVICES: ServiceHooks = ServiceHooks;
impl Hooks for ServiceHooks {
    fn reserve(
        &self,
        state: &ApiState,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> ApiResult<Option<Allocation>> {
        services::allocate(state, obj, old).map(Some)
    }
    fn removed(&self, state: &ApiState, obj: &Value) {
        state.services.release(obj);
    }
}

pub struct NamespaceHooks;
pub static NAMESPACES: NamespaceHooks = NamespaceHooks;
impl Hooks for NamespaceHooks {
    fn created(&self, state: &ApiState, obj: &Value) {
        state
            .terminating_namespaces
            .lock()
            .remove(crate::meta::name(obj));
    }
    fn may_delete(&self, state: &ApiState, name: &str) -> ApiResult<()> {
        if state.admission.namespace_lifecycle
            && crate::admission::IMMORTAL_NAMESPACES.contains(&name)
        {
            return Err(ApiError::forbidden(
                "",
                "namespaces",
                name,
                "this namespace may not be deleted",
            ));
        }
        Ok(())
    }
    fn terminating(&self, state: &ApiState, obj: &Value) {
        state
            .terminating_namespaces
            .lock()
            .insert(crate::meta::name(obj).to_owned());
    }
}
