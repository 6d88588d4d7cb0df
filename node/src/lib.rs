//! stoq-node (being written).
