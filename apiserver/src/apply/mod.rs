//! Server-side apply (in progress, issue #21 part 3): field sets and their FieldsV1 form
//! (`fieldpath`), the shapes of kinds that decide ownership (`typed`), and the sets computed
//! from objects (`sets`). docs/design/server-side-apply.md is the behaviour to reach; the
//! PATCH handler does not use this yet (apply patches still answer 415).

pub mod fieldpath;
pub mod merge;
pub mod sets;
pub mod typed;
