//! Registry CAs in the node-ca layout that CRI-O, podman and docker read:
//! `/etc/docker/certs.d/<host[:port]>/ca.crt`.
//!
//! Only `/etc/docker/certs.d` is written: containers/image uses the first existing folder for a host
//! (`/etc/containers/certs.d` before `/etc/docker/certs.d`) with no merging, so a second copy could
//! shadow a folder an admin placed there.

use crate::policy::Policy;

pub const DOCKER_CERTS_D: &str = "etc/docker/certs.d";

/// `(relative path, PEM)` for every registry with a CA.
pub fn docker_certs_d(policy: &Policy) -> Vec<(String, &str)> {
    policy.registry_cas.iter().map(|(host, pem)| (format!("{DOCKER_CERTS_D}/{host}/ca.crt"), pem.as_str())).collect()
}
