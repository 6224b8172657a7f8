//! The outcome of a plugin call: a Code that tells the scheduler and the queue what to do
//! next, the reasons shown to users, and the plugin that decided.

use std::borrow::Cow;

/// What a plugin decided. The doc of each code says what happens to the pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// Go on to the next plugin or extension point.
    Success,
    /// Something broke (not the pod's fault): the pod goes to the backoff queue.
    Error,
    /// The node does not fit now but might after preemption or a cluster change; the pod
    /// waits in the unschedulable pods until an event the rejecting plugin registered.
    Unschedulable,
    /// The node will not fit whatever is preempted; preemption skips this node.
    UnschedulableAndUnresolvable,
    /// Permit: hold the pod until it is allowed, rejected or the timeout passes.
    Wait,
    /// The plugin does not apply to this pod; its later points are skipped for this cycle.
    Skip,
    /// The pod waits for something outside the scheduler (a gate, a volume) and is retried
    /// only when the rejecting plugin's events arrive, never by the periodic flush.
    Pending,
}

/// A plugin's answer: Success costs nothing (no allocation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub reasons: Vec<Cow<'static, str>>,
    /// The plugin that returned a failure, as the queue records it for requeueing.
    pub plugin: &'static str,
}

impl Status {
    pub const fn success() -> Status {
        Status {
            code: Code::Success,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    pub fn new(code: Code, reason: impl Into<Cow<'static, str>>) -> Status {
        Status {
            code,
            reasons: vec![reason.into()],
            plugin: "",
        }
    }

    pub fn unschedulable(reason: impl Into<Cow<'static, str>>) -> Status {
        Status::new(Code::Unschedulable, reason)
    }

    pub fn unresolvable(reason: impl Into<Cow<'static, str>>) -> Status {
        Status::new(Code::UnschedulableAndUnresolvable, reason)
    }

    pub fn error(reason: impl Into<Cow<'static, str>>) -> Status {
        Status::new(Code::Error, reason)
    }

    pub const fn skip() -> Status {
        Status {
            code: Code::Skip,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    pub fn with_plugin(mut self, plugin: &'static str) -> Status {
        self.plugin = plugin;
        self
    }

    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    pub fn is_skip(&self) -> bool {
        self.code == Code::Skip
    }

    /// Unschedulable or UnschedulableAndUnresolvable: the pod (not the system) is at fault.
    pub fn is_rejected(&self) -> bool {
        matches!(
            self.code,
            Code::Unschedulable | Code::UnschedulableAndUnresolvable | Code::Pending
        )
    }

    /// The reasons joined as upstream prints a Status's message.
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

impl Default for Status {
    fn default() -> Self {
        Status::success()
    }
}
