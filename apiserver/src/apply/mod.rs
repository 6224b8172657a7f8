//! Server-side apply (PATCH with application/apply-patch+yaml) and the field ownership every
//! write records in metadata.managedFields: field sets and their FieldsV1 form
//! (`fieldpath`), the shapes of kinds that decide ownership (`typed`), the sets computed from
//! objects (`sets`), merging an applied configuration and removing what it no longer applies
//! (`merge`), and the managers' entries, conflicts and force (`managed`).
//! docs/design/server-side-apply.md is upstream's behaviour this follows.

pub mod fieldpath;
pub mod managed;
pub mod merge;
pub mod sets;
pub mod typed;
