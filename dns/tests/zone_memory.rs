//! The zone's heap for many Services, counted by dhat's allocator (exact, unlike a
//! process's RSS): what each Service of three endpoints costs.

use dns::testing::{NAMESPACES, namespace, service, slice};
use dns::zone::Zone;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

/// The bytes live on the heap as glibc's malloc holds them: each block with an 8-byte
/// header, rounded up to 16 (on average 8 more), so about 16 more than asked.
fn live() -> isize {
    let stats = dhat::HeapStats::get();
    (stats.curr_bytes + 16 * stats.curr_blocks) as isize
}

#[test]
fn ten_thousand_services_of_three_endpoints_take_under_350_bytes_each() {
    const SERVICES: usize = 10_000;
    let namespaces: Vec<Namespace> = (0..NAMESPACES).map(namespace).collect();
    let services: Vec<Service> = (0..SERVICES).map(service).collect();
    let slices: Vec<EndpointSlice> = (0..SERVICES).map(|i| slice(i, true)).collect();

    let _profiler = dhat::Profiler::builder().testing().build();
    let empty = live();
    let mut zone = Zone::new("cluster.local", 30).unwrap();
    namespaces.iter().for_each(|n| zone.namespace_changed(n));
    let with_namespaces = live();
    services.iter().for_each(|s| zone.service_changed(s));
    let with_services = live();
    slices.iter().for_each(|s| zone.slice_changed(s));
    let with_slices = live();
    // A second pass changes nothing but must not grow the zone either.
    services.iter().for_each(|s| zone.service_changed(s));
    slices.iter().for_each(|s| zone.slice_changed(s));
    let again = live();

    let per_service = |bytes: isize| bytes as f64 / SERVICES as f64;
    eprintln!(
        "namespaces {} B; per Service: its Service {:.0} B, its slice {:.0} B, in all {:.0} B \
         ({:.0} B an object of four); applied again {:.0} B",
        with_namespaces - empty,
        per_service(with_services - with_namespaces),
        per_service(with_slices - with_services),
        per_service(with_slices - empty),
        per_service(with_slices - empty) / 4.0,
        per_service(again - empty),
    );
    assert_eq!(
        again, with_slices,
        "applying the same objects again keeps the zone's size"
    );
    // The slab's room to grow counts here (16,384 slots of 80 bytes for 10,000), though
    // pages of it never written are not resident.
    assert!(
        per_service(with_slices - empty) < 350.0,
        "{:.0} bytes a Service",
        per_service(with_slices - empty)
    );

    // The positive control: a zone that answers what it holds.
    let name =
        hickory_proto::rr::Name::from_ascii("pod-1.svc-9999.ns-99.svc.cluster.local.").unwrap();
    assert!(matches!(
        zone.lookup(&name, hickory_proto::rr::RecordType::A),
        dns::zone::Lookup::Records { .. }
    ));
    drop(zone);
    assert!(live() - empty < 4096, "the zone frees what it took");
}
