//! The redirecting frontend: the lookup table image → replicas (a cache built from the backends'
//! catalogs), health checks of every backend, redirects to a healthy replica, the gallery and
//! search pages, and failover of the canonical IP address between the two frontends.
//!
//! It must never hold data that cannot be rebuilt from the backends, never serve image bytes
//! itself, and never take the canonical address without fencing the previous holder.
