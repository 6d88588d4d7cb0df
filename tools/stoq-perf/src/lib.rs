//! stoq-perf (being written).
