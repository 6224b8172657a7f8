//! CustomResourceDefinitions through real kubectl, modelled on upstream's apiextensions
//! integration tests: a definition is established and discovered, its objects are defaulted,
//! pruned and validated by its schema, status is a subresource, and deleting the definition
//! deletes its objects (holding the definition Terminating while one of them is held).

use crate::support;

use std::time::{Duration, Instant};

use support::{ApiServer, assert_contains_in_order};

const WIDGETS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    plural: widgets
    kind: Widget
    shortNames: [wd]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.selector
    selectableFields:
    - {jsonPath: .spec.color}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Color, type: string, jsonPath: .spec.color, priority: 1}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1, maximum: 10}
              color: {type: string, enum: [red, blue], default: red}
              replicas: {type: integer}
          status:
            type: object
            properties:
              ready: {type: boolean}
              replicas: {type: integer}
              selector: {type: string}
              conditions:
                type: array
                items:
                  type: object
                  properties:
                    type: {type: string}
                    status: {type: string}
"#;

const WIDGET: &str = r#"
apiVersion: example.com/v1
kind: Widget
metadata:
  name: small
  namespace: default
spec:
  size: 2
  extra: dropped
"#;

/// Waits until `kubectl args` succeeds (a definition's resources are served once the
/// controller establishes it); the last output on timeout.
fn eventually(s: &ApiServer, args: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = s.kubectl(args);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "kubectl {} kept failing: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn apply(s: &ApiServer, yaml: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["apply", "-f", "-"];
    args.extend_from_slice(extra);
    s.kubectl_stdin(&args, Some(yaml))
}

fn established(s: &ApiServer) {
    let out = apply(s, WIDGETS, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let waited = s.ok(&[
        "wait",
        "--for=condition=established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ]);
    assert!(waited.contains("condition met"), "{waited}");
}

#[test]
fn a_definition_is_established_discovered_and_serves_validated_objects() {
    let s = ApiServer::start();
    established(&s);
    let crd = s.ok(&[
        "get",
        "crd",
        "widgets.example.com",
        "-o",
        "jsonpath={range .status.conditions[*]}{.type}={.status}/{.reason} {end}|{.status.acceptedNames.kind}|{.status.storedVersions}",
    ]);
    assert_contains_in_order(
        &crd,
        &[
            "NamesAccepted=True/NoConflicts",
            "Established=True/InitialNamesAccepted",
            "|Widget|",
            "[\"v1\"]",
        ],
    );
    let resources = s.ok(&["api-resources", "--api-group=example.com"]);
    assert_contains_in_order(
        &resources,
        &["widgets", "wd", "example.com/v1", "true", "Widget"],
    );

    // An unknown field is refused under kubectl's strict validation, pruned without it.
    let strict = apply(&s, WIDGET, &[]);
    let err = String::from_utf8_lossy(&strict.stderr);
    assert!(
        !strict.status.success() && err.contains("unknown field \"spec.extra\""),
        "{err}"
    );
    let out = apply(&s, WIDGET, &["--validate=false"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("widget.example.com/small created"));
    let got = s.ok(&[
        "get",
        "wd",
        "small",
        "-o",
        "jsonpath={.spec} {.metadata.generation}",
    ]);
    assert_eq!(got, r#"{"color":"red","size":2} 1"#);

    // The schema's rules answer 422 with the field and upstream's message.
    let bad = WIDGET
        .replace("size: 2", "size: 11")
        .replace("small", "big");
    let out = apply(&s, &bad, &["--validate=false"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("The Widget \"big\" is invalid: spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10"),
        "{err}"
    );
    let err = s.fails(&[
        "patch",
        "wd",
        "small",
        "--type=merge",
        "-p",
        r#"{"spec":{"color":"green"}}"#,
    ]);
    assert!(
        err.contains(r#"spec.color: Unsupported value: "green": supported values: "red", "blue""#),
        "{err}"
    );

    // Status only through its subresource; a spec change bumps the generation.
    s.ok(&[
        "patch",
        "wd",
        "small",
        "--type=merge",
        "-p",
        r#"{"spec":{"size":3},"status":{"ready":true}}"#,
    ]);
    let got = s.ok(&[
        "get",
        "wd",
        "small",
        "-o",
        "jsonpath={.spec.size} {.status.ready} {.metadata.generation}",
    ]);
    assert_eq!(got, "3  2");
    s.ok(&[
        "patch",
        "wd",
        "small",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"ready":true}}"#,
    ]);
    let got = s.ok(&[
        "get",
        "wd",
        "small",
        "-o",
        "jsonpath={.status.ready} {.metadata.generation}",
    ]);
    assert_eq!(got, "true 2");

    // Listed in tables with the version's printer columns (Color only wide), in the "all"
    // category, and watched like any resource.
    s.ok(&["patch", "wd", "small", "--subresource=status", "--type=merge", "-p",
        r#"{"status":{"conditions":[{"type":"Synced","status":"False"},{"type":"Ready","status":"True"}]}}"#]);
    let table = s.ok(&["get", "widgets", "-A"]);
    assert_contains_in_order(
        &table,
        &[
            "NAMESPACE",
            "NAME",
            "SIZE",
            "READY",
            "AGE",
            "default",
            "small",
            "3",
            "True",
        ],
    );
    assert!(!table.contains("COLOR"), "{table}");
    let wide = s.ok(&["get", "widgets", "-o", "wide"]);
    assert_contains_in_order(
        &wide,
        &[
            "NAME", "SIZE", "COLOR", "READY", "AGE", "small", "3", "red", "True",
        ],
    );
    let all = s.ok(&["get", "all", "-n", "default"]);
    assert!(all.contains("widget.example.com/small"), "{all}");
    let json = s.ok(&[
        "get",
        "--raw",
        "/apis/example.com/v1/namespaces/default/widgets?watch=true&timeoutSeconds=1",
    ]);
    assert!(
        json.contains(r#""type":"ADDED""#) && json.contains(r#""name":"small""#),
        "{json}"
    );

    // The scale subresource reads and writes the paths the definition names.
    let scaled = s.ok(&["scale", "widget", "small", "--replicas=4"]);
    assert!(
        scaled.contains("widget.example.com/small scaled"),
        "{scaled}"
    );
    s.ok(&[
        "patch",
        "wd",
        "small",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":4,"selector":"app=small"}}"#,
    ]);
    let scale = s.ok(&[
        "get",
        "--raw",
        "/apis/example.com/v1/namespaces/default/widgets/small/scale",
    ]);
    let scale: serde_json::Value = serde_json::from_str(&scale).unwrap();
    assert_eq!(
        (
            &scale["kind"],
            &scale["spec"]["replicas"],
            &scale["status"]["replicas"],
            &scale["status"]["selector"]
        ),
        (
            &serde_json::json!("Scale"),
            &serde_json::json!(4),
            &serde_json::json!(4),
            &serde_json::json!("app=small")
        )
    );
    let replicas = s.ok(&["get", "wd", "small", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(replicas, "4");

    // Field selectors on name and namespace; `kubectl explain` reads the kind's schema.
    let named = s.ok(&[
        "get",
        "widgets",
        "-A",
        "--field-selector",
        "metadata.name=small,metadata.namespace=default",
        "-o",
        "name",
    ]);
    assert_eq!(named.trim(), "widget.example.com/small");
    let none = s.ok(&[
        "get",
        "widgets",
        "-A",
        "--field-selector",
        "metadata.name=other",
        "-o",
        "name",
    ]);
    assert_eq!(none.trim(), "");
    // The definition's selectableFields, and only those.
    let red = s.ok(&[
        "get",
        "widgets",
        "--field-selector",
        "spec.color=red",
        "-o",
        "name",
    ]);
    assert_eq!(red.trim(), "widget.example.com/small");
    let blue = s.ok(&[
        "get",
        "widgets",
        "--field-selector",
        "spec.color=blue",
        "-o",
        "name",
    ]);
    assert_eq!(blue.trim(), "");
    let err = s.fails(&["get", "widgets", "--field-selector", "spec.size=3"]);
    assert!(
        err.contains("field label not supported: spec.size"),
        "{err}"
    );
    let explained = s.ok(&["explain", "widgets.spec"]);
    assert_contains_in_order(
        &explained,
        &["KIND:", "Widget", "FIELD: spec", "color", "size"],
    );

    // A restarted server serves the definition's objects from what it stored.
    let mut s = s;
    s.restart();
    let got = eventually(
        &s,
        &["get", "wd", "small", "-o", "jsonpath={.status.ready}"],
    );
    assert_eq!(got, "true");
    let red = s.ok(&[
        "get",
        "widgets",
        "--field-selector",
        "spec.color=red",
        "-o",
        "name",
    ]);
    assert_eq!(
        red.trim(),
        "widget.example.com/small",
        "selectable after a restart"
    );
}

#[test]
fn a_selectable_field_declared_later_selects_existing_objects() {
    let s = ApiServer::start();
    let without = WIDGETS.replace("    selectableFields:\n    - {jsonPath: .spec.color}\n", "");
    assert!(!without.contains("selectableFields"));
    assert!(apply(&s, &without, &[]).status.success());
    s.ok(&[
        "wait",
        "--for=condition=established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ]);
    let out = apply(&s, WIDGET, &["--validate=false"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = s.fails(&["get", "widgets", "--field-selector", "spec.color=red"]);
    assert!(
        err.contains("field label not supported: spec.color"),
        "{err}"
    );
    assert!(apply(&s, WIDGETS, &[]).status.success());
    let red = eventually(
        &s,
        &[
            "get",
            "widgets",
            "--field-selector",
            "spec.color=red",
            "-o",
            "name",
        ],
    );
    assert_eq!(red.trim(), "widget.example.com/small");
}

#[test]
fn a_name_another_definition_holds_is_not_accepted() {
    let s = ApiServer::start();
    established(&s);
    let gizmos = WIDGETS
        .replace("widgets.example.com", "gizmos.example.com")
        .replace("plural: widgets", "plural: gizmos\n    singular: gizmo")
        .replace("shortNames: [wd]", "shortNames: [gz]");
    let out = apply(&s, &gizmos, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let cond = s.ok(&["get", "crd", "gizmos.example.com", "-o", "jsonpath={.status.conditions[?(@.type==\"NamesAccepted\")].reason}: {.status.conditions[?(@.type==\"NamesAccepted\")].message}"]);
        if cond.starts_with("KindConflict") {
            assert_eq!(cond, "KindConflict: \"Widget\" is already in use");
            break;
        }
        assert!(Instant::now() < deadline, "{cond}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let err = s.fails(&["get", "gizmos"]);
    assert!(
        err.contains("the server doesn't have a resource type \"gizmos\""),
        "{err}"
    );
}

#[test]
fn deleting_a_definition_deletes_its_objects_and_refuses_new_ones_meanwhile() {
    let s = ApiServer::start();
    established(&s);
    let held = WIDGET.replace("extra: dropped", "color: blue").replace(
        "namespace: default",
        "namespace: default\n  finalizers: [example.com/hold]",
    );
    let out = apply(&s, &held, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.ok(&["create", "namespace", "other"]);
    let other = WIDGET
        .replace("extra: dropped", "")
        .replace("namespace: default", "namespace: other");
    assert!(apply(&s, &other, &[]).status.success());

    s.ok(&["delete", "crd", "widgets.example.com", "--wait=false"]);
    // The held object keeps the definition terminating; the other object is gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reason = s.ok(&[
            "get",
            "crd",
            "widgets.example.com",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Terminating\")].reason}",
        ]);
        let left = s.ok(&["get", "widgets", "-A", "-o", "name"]);
        if reason == "InstanceDeletionInProgress" && left.trim() == "widget.example.com/small" {
            break;
        }
        assert!(Instant::now() < deadline, "{reason}: {left}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let refused = apply(&s, &WIDGET.replace("small", "late"), &["--validate=false"]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("create not allowed while custom resource definition is terminating"),
        "{err}"
    );

    // Releasing the held object lets the definition go, and its kind with it.
    s.ok(&[
        "patch",
        "wd",
        "small",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while s
        .kubectl(&["get", "crd", "widgets.example.com"])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "the definition stayed");
        std::thread::sleep(Duration::from_millis(100));
    }
    // (kubectl's discovery cache may still list the kind: ask the server itself.)
    let err = s.fails(&["get", "--raw", "/apis/example.com/v1/widgets"]);
    assert!(err.contains("NotFound"), "{err}");
    let err = s.fails(&["get", "--raw", "/apis/example.com"]);
    assert!(err.contains("NotFound"), "{err}");

    // Defined again, the kind starts empty: the old objects were deleted, not hidden.
    established(&s);
    let listed = eventually(&s, &["get", "widgets", "-A", "-o", "name"]);
    assert_eq!(listed.trim(), "");
}

#[test]
fn every_served_version_shows_the_objects_of_the_others() {
    let s = ApiServer::start();
    let two = WIDGETS.replace(
        "  versions:\n  - name: v1\n",
        "  versions:\n  - name: v1beta1\n    served: true\n    storage: false\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n  - name: v1\n",
    );
    let out = apply(&s, &two, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.ok(&[
        "wait",
        "--for=condition=established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ]);
    let old = WIDGET
        .replace("example.com/v1", "example.com/v1beta1")
        .replace("extra: dropped", "");
    let out = apply(&s, &old, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Stored in the storage version, shown in the version asked for.
    let get = |version: &str| {
        let raw = s.ok(&[
            "get",
            "--raw",
            &format!("/apis/example.com/{version}/namespaces/default/widgets/small"),
        ]);
        serde_json::from_str::<serde_json::Value>(&raw).unwrap()["apiVersion"].clone()
    };
    assert_eq!(get("v1"), "example.com/v1");
    assert_eq!(get("v1beta1"), "example.com/v1beta1");
    let list = s.ok(&["get", "--raw", "/apis/example.com/v1beta1/widgets"]);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["items"][0]["apiVersion"], "example.com/v1beta1");
    let watch = s.ok(&[
        "get",
        "--raw",
        "/apis/example.com/v1/widgets?watch=true&timeoutSeconds=1",
    ]);
    assert!(
        watch.contains(r#""object":{"apiVersion":"example.com/v1","#),
        "{watch}"
    );
    // Written through v1beta1 again, the v1 reading still sees v1 (and the update).
    s.ok(&[
        "patch",
        "widgets.v1beta1.example.com",
        "small",
        "--type=merge",
        "-p",
        r#"{"spec":{"size":5}}"#,
    ]);
    let size = s.ok(&[
        "get",
        "widgets.v1.example.com",
        "small",
        "-o",
        "jsonpath={.apiVersion} {.spec.size}",
    ]);
    assert_eq!(size, "example.com/v1 5");
    let versions = s.ok(&[
        "get",
        "crd",
        "widgets.example.com",
        "-o",
        "jsonpath={.status.storedVersions}",
    ]);
    assert_eq!(versions, r#"["v1"]"#);
}

#[test]
fn a_cluster_scoped_kind_is_served_without_namespaces() {
    let s = ApiServer::start();
    let gadgets = WIDGETS
        .replace("widgets.example.com", "gadgets.example.com")
        .replace("plural: widgets", "plural: gadgets")
        .replace("kind: Widget", "kind: Gadget")
        .replace("shortNames: [wd]", "shortNames: [gd]")
        .replace("scope: Namespaced", "scope: Cluster");
    let out = apply(&s, &gadgets, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.ok(&[
        "wait",
        "--for=condition=established",
        "crd/gadgets.example.com",
        "--timeout=20s",
    ]);
    let gadget =
        "apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: g\nspec:\n  size: 1\n";
    let out = apply(&s, gadget, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = s.ok(&["get", "gadgets"]);
    assert!(
        table.contains("g ") && !table.contains("NAMESPACE"),
        "{table}"
    );
    let resources = s.ok(&[
        "api-resources",
        "--api-group=example.com",
        "--namespaced=false",
    ]);
    assert!(resources.contains("gadgets"), "{resources}");
    // Named inside a namespace, a cluster-scoped kind is not found.
    let err = s.fails(&[
        "get",
        "--raw",
        "/apis/example.com/v1/namespaces/default/gadgets/g",
    ]);
    assert!(err.contains("NotFound"), "{err}");
}

const GATES: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gates.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: gates, kind: Gate}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - rule: self.minReplicas <= self.maxReplicas
              message: minReplicas must not exceed maxReplicas
            - rule: self.zone == oldSelf.zone
              message: zone is immutable
              fieldPath: .zone
            - rule: "!has(self.ports) || self.ports.all(p, p.port > 1024)"
              messageExpression: "'ports must be unprivileged, not ' + string(self.ports[0].port)"
              reason: FieldValueForbidden
            properties:
              minReplicas: {type: integer}
              maxReplicas: {type: integer}
              zone: {type: string, enum: [a, b]}
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string}
                    port: {type: integer}
"#;

/// Applies `yaml`, which must succeed.
fn applies(s: &ApiServer, yaml: &str) {
    let out = apply(s, yaml, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
}

/// Applies `yaml`, which must be refused; kubectl's error.
fn refused(s: &ApiServer, yaml: &str) -> String {
    let out = apply(s, yaml, &[]);
    assert!(!out.status.success(), "{yaml} was accepted");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn gate(min: i64, max: i64, zone: &str, port: i64) -> String {
    format!(
        "apiVersion: example.com/v1\nkind: Gate\nmetadata: {{name: g}}\nspec:\n  minReplicas: {min}\n  maxReplicas: {max}\n  zone: {zone}\n  ports: [{{name: http, port: {port}}}]\n"
    )
}

#[test]
fn validation_rules_refuse_objects_with_their_messages() {
    let s = ApiServer::start();
    // A rule that does not compile refuses the definition.
    let broken = GATES.replace(
        "self.minReplicas <= self.maxReplicas",
        "self.minReplicas <=",
    );
    assert_contains_in_order(
        &refused(&s, &broken),
        &[
            "is invalid",
            "openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule",
            "compilation failed",
        ],
    );
    applies(&s, GATES);
    s.ok(&[
        "wait",
        "--for=condition=established",
        "crd/gates.example.com",
        "--timeout=20s",
    ]);

    eventually(&s, &["get", "gates"]);
    // Positive control, then each rule's refusal as kubectl prints it.
    applies(&s, &gate(1, 3, "a", 8080));
    assert_contains_in_order(
        &refused(&s, &gate(5, 3, "a", 8080)),
        &[
            "The Gate \"g\" is invalid",
            "spec: Invalid value: \"object\": minReplicas must not exceed maxReplicas",
        ],
    );
    assert_contains_in_order(
        &refused(&s, &gate(1, 3, "a", 80)),
        &["spec: Forbidden: ports must be unprivileged, not 80"],
    );
    // A transition rule: the zone cannot change once set.
    assert_contains_in_order(
        &refused(&s, &gate(1, 3, "b", 8080)),
        &["spec.zone: Invalid value: \"object\": zone is immutable"],
    );
    // A schema error first: the rules are not run, and the answer says so.
    let err = refused(&s, &gate(9, 3, "c", 80));
    assert_contains_in_order(
        &err,
        &[
            "spec.zone: Unsupported value: \"c\"",
            "some validation rules were not checked because the object was invalid",
        ],
    );
    assert!(!err.contains("minReplicas must not exceed"), "{err}");
    assert_eq!(
        s.ok(&[
            "get",
            "gate",
            "g",
            "-o",
            "jsonpath={.spec.zone} {.spec.maxReplicas}"
        ]),
        "a 3"
    );
}
