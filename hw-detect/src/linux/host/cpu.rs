//! CPU topology from hwloc (`hwlocality` over the system libhwloc), which
//! reads sysfs, cpuid and the cgroup's allowed CPUs and reconciles them.

use std::collections::BTreeMap;

use hwlocality::Topology;
use hwlocality::errors::RawHwlocError;
use hwlocality::object::TopologyObject;
use hwlocality::object::attributes::ObjectAttributes;
use hwlocality::object::types::{CacheType, ObjectType};
use hwlocality::topology::builder::TypeFilter;

use crate::{CacheLevel, CpuTopology, Known, NumaNode};

/// Every CPU cache type hwloc knows, data/unified and instruction.
const CACHE_TYPES: [ObjectType; 8] = [
    ObjectType::L1Cache,
    ObjectType::L1ICache,
    ObjectType::L2Cache,
    ObjectType::L2ICache,
    ObjectType::L3Cache,
    ObjectType::L3ICache,
    ObjectType::L4Cache,
    ObjectType::L5Cache,
];

/// Packages, cores, hardware threads, NUMA nodes and caches as hwloc sees
/// them for this process (CPUs outside its allowed set are left out).
pub fn cpu_topology() -> Known<CpuTopology> {
    match build() {
        Ok(topology) => from_topology(&topology).into(),
        Err(e) => Known::Unknown(format!("hwloc topology: {e}")),
    }
}

/// A topology that keeps instruction caches, which hwloc drops by default.
fn build() -> Result<Topology, RawHwlocError> {
    Topology::builder().with_cpu_icache_type_filter(TypeFilter::KeepAll)?.build()
}

fn from_topology(topology: &Topology) -> Result<CpuTopology, String> {
    let numa_nodes = topology
        .objects_with_type(ObjectType::NUMANode)
        .map(|node| {
            let os_index = node
                .os_index()
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| format!("hwloc: NUMA node {} has no OS index", node.logical_index()))?;
            Ok(NumaNode { os_index, cpus: cpus_of(node) })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(CpuTopology {
        packages: topology.objects_with_type(ObjectType::Package).len(),
        cores: topology.objects_with_type(ObjectType::Core).len(),
        threads: topology.objects_with_type(ObjectType::PU).len(),
        numa_nodes,
        caches: caches(topology),
    })
}

/// The OS indexes of the logical CPUs in an object's cpuset.
fn cpus_of(object: &TopologyObject) -> Vec<usize> {
    object.cpuset().map(|set| set.iter_set().map(usize::from).collect()).unwrap_or_default()
}

/// One entry per (level, kind, instance size), counting instances. Levels
/// whose instances differ in size (hybrid CPUs) get one entry per size.
fn caches(topology: &Topology) -> Vec<CacheLevel> {
    let mut counts: BTreeMap<(u32, &'static str, Option<u64>), usize> = BTreeMap::new();
    for ty in CACHE_TYPES {
        for object in topology.objects_with_type(ty) {
            let Some(ObjectAttributes::Cache(attr)) = object.attributes() else { continue };
            let Ok(level) = u32::try_from(attr.depth()) else { continue };
            let kind = match attr.cache_type() {
                CacheType::Data => "data",
                CacheType::Instruction => "instruction",
                CacheType::Unified => "unified",
                _ => "unknown",
            };
            *counts.entry((level, kind, attr.size().map(u64::from))).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|((level, kind, size), count)| CacheLevel { level, kind: kind.to_owned(), size, count })
        .collect()
}
