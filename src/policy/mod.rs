//! Validation of the input objects and the merged mirror policy every renderer works from.
//!
//! [`Policy::from_inputs`] checks what docs/design.md ("Validation") lists and reports every
//! problem at once, each naming the object, the field path and the value. A `Policy` is only ever built from
//! valid input, so renderers never see a half-valid state.

pub mod cas;
pub mod fingerprint;
pub mod hint;
pub mod merge;
pub mod scope;

use crate::model::pull_secret::{self, PullSecret};
use crate::model::{object_ref, Diagnostic, Inputs, MirrorEntry, ALLOW_CONTACTING_SOURCE, NEVER_CONTACT_SOURCE};
use foldhash::{HashMap, HashMapExt};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// One problem in the input, pointing at the object, the field and the offending value, and at
/// the file and line the object came from when it came from a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationError {
    /// `Kind/name`.
    pub object: String,
    /// Field path inside the object, e.g. `spec.imageDigestMirrors[1].mirrors[0]`.
    pub field: String,
    /// Shown once, by the field; messages do not repeat it.
    pub value: String,
    pub message: String,
    /// What to change, when it can be said.
    pub fix: Option<String>,
    /// Where the object was read from (`Inputs::origins`); `None` for a cluster's objects.
    pub file: Option<std::path::PathBuf>,
    pub line: Option<usize>,
}

impl ValidationError {
    pub fn diagnostic(&self) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            line: self.line,
            object: Some(self.object.clone()),
            field: Some(self.field.clone()),
            value: Some(self.value.clone()),
            message: self.message.clone(),
            fix: self.fix.clone(),
            document: None,
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.diagnostic().fmt(f)
    }
}

/// Every problem found in one input; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Whether mirrors of a set serve digest references only (IDMS, ICSP) or tags too (ITMS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    Digest,
    Tag,
}

/// One surviving `source`/`mirrors` entry of one object (entries whose mirrors are empty or only
/// repeat the source are dropped, as the reference does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry {
    /// `Kind/name` of the object, shared by all its entries.
    pub object: Arc<str>,
    pub source: String,
    pub mirrors: Vec<String>,
    pub never_contact_source: bool,
}

/// All entries of one group for one source, merged into a single preference order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorSet {
    pub source: String,
    pub mirrors: Vec<String>,
    /// Some surviving entry for this source says `NeverContactSource`.
    pub never_contact_source: bool,
}

/// The validated, merged policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub digest_entries: Vec<SourceEntry>,
    pub tag_entries: Vec<SourceEntry>,
    /// Sorted by source.
    pub digest_sets: Vec<MirrorSet>,
    /// Sorted by source.
    pub tag_sets: Vec<MirrorSet>,
    pub insecure_scopes: Vec<String>,
    pub blocked_scopes: Vec<String>,
    pub allowed_scopes: Vec<String>,
    pub search_registries: Vec<String>,
    /// Name of the ConfigMap in `openshift-config` holding registry CAs (`spec.additionalTrustedCA`).
    pub trusted_ca_config_map: Option<String>,
    /// Registry `host[:port]` -> PEM of its CA certificates (validated, normalised).
    pub registry_cas: BTreeMap<String, String>,
    /// The cluster pull secret (`openshift-config/pull-secret`), parsed: a broken one is refused
    /// here, by every command alike, not first when a renderer needs it.
    pub pull_secret: Option<PullSecret>,
    /// Things that do not stop rendering but that an admin should know (e.g. a missing CA ConfigMap).
    pub warnings: Vec<String>,
}

impl Policy {
    pub fn from_inputs(inputs: &Inputs) -> Result<Policy, ValidationErrors> {
        let mut v = Validator { errors: Vec::new(), policies: HashMap::new(), origins: &inputs.origins };
        let mut policy = Policy::default();

        // Sorted by name so that which object a conflict is reported on never depends on file order.
        let mut idms: Vec<_> = inputs.digest_sets.iter().collect();
        idms.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let mut icsp: Vec<_> = inputs.content_source_policies.iter().collect();
        icsp.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let mut itms: Vec<_> = inputs.tag_sets.iter().collect();
        itms.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));

        for o in idms {
            let object: Arc<str> = object_ref("ImageDigestMirrorSet", &o.metadata).into();
            let entries = &o.spec.image_digest_mirrors;
            v.entries(&object, "spec.imageDigestMirrors", entries, true, &mut policy.digest_entries);
        }
        for o in icsp {
            let object: Arc<str> = object_ref("ImageContentSourcePolicy", &o.metadata).into();
            let entries = &o.spec.repository_digest_mirrors;
            v.entries(&object, "spec.repositoryDigestMirrors", entries, false, &mut policy.digest_entries);
        }
        for o in itms {
            let object: Arc<str> = object_ref("ImageTagMirrorSet", &o.metadata).into();
            let entries = &o.spec.image_tag_mirrors;
            v.entries(&object, "spec.imageTagMirrors", entries, true, &mut policy.tag_entries);
        }

        if let Some(image) = &inputs.image {
            let object = object_ref("Image", &image.metadata);
            if let Some(rs) = &image.spec.registry_sources {
                let base = "spec.registrySources";
                v.scopes(&object, &format!("{base}.insecureRegistries"), &rs.insecure_registries);
                v.scopes(&object, &format!("{base}.blockedRegistries"), &rs.blocked_registries);
                v.scopes(&object, &format!("{base}.allowedRegistries"), &rs.allowed_registries);
                if !rs.allowed_registries.is_empty() && !rs.blocked_registries.is_empty() {
                    v.error(
                        &object,
                        base,
                        "allowedRegistries and blockedRegistries",
                        "only one of allowedRegistries and blockedRegistries may be set",
                    );
                }
                v.search_registries(
                    &object,
                    &format!("{base}.containerRuntimeSearchRegistries"),
                    &rs.container_runtime_search_registries,
                );
                policy.insecure_scopes = rs.insecure_registries.clone();
                policy.blocked_scopes = rs.blocked_registries.clone();
                policy.allowed_scopes = rs.allowed_registries.clone();
                policy.search_registries = rs.container_runtime_search_registries.clone();
            }
            if let Some(ca) = &image.spec.additional_trusted_ca {
                if !ca.name.is_empty() {
                    policy.trusted_ca_config_map = Some(ca.name.clone());
                }
            }
        }

        policy.registry_cas =
            cas::registry_cas(inputs, policy.trusted_ca_config_map.as_deref(), &mut v.errors, &mut policy.warnings);

        match PullSecret::from_inputs(inputs) {
            Ok(secret) => policy.pull_secret = secret,
            // The message says where the JSON broke, never what it holds.
            Err(e) => v.error(
                &format!("Secret/{}", pull_secret::NAME),
                &format!("data[{}]", pull_secret::KEY),
                "<credentials, not shown>",
                e.message,
            ),
        }

        if !v.errors.is_empty() {
            for e in &mut v.errors {
                if let Some(origin) = inputs.origins.get(&e.object) {
                    e.file = Some(origin.file.clone());
                    e.line = origin.line_of(&e.value);
                }
            }
            return Err(ValidationErrors(v.errors));
        }
        policy.digest_sets = merged_sets(&policy.digest_entries);
        policy.tag_sets = merged_sets(&policy.tag_entries);
        Ok(policy)
    }

    /// Whether the policy changes registries.conf at all.
    pub fn touches_registries_conf(&self) -> bool {
        !(self.digest_sets.is_empty()
            && self.tag_sets.is_empty()
            && self.insecure_scopes.is_empty()
            && self.blocked_scopes.is_empty())
    }
}

/// Groups entries by exact source (sorted) and merges each group's mirror lists.
fn merged_sets(entries: &[SourceEntry]) -> Vec<MirrorSet> {
    let mut by_source: BTreeMap<&str, Vec<&SourceEntry>> = BTreeMap::new();
    for e in entries {
        by_source.entry(&e.source).or_default().push(e);
    }
    by_source
        .into_iter()
        .map(|(source, group)| {
            let lists: Vec<&[String]> = group.iter().map(|e| e.mirrors.as_slice()).collect();
            MirrorSet {
                source: source.to_string(),
                mirrors: merge::merge_mirror_lists(source, &lists),
                never_contact_source: group.iter().any(|e| e.never_contact_source),
            }
        })
        .collect()
}

/// A value as shown in a message: whole when short, else its start (the message says how long).
fn shown(value: &str) -> String {
    const SHOWN: usize = scope::MAX_SCOPE_CHARS;
    if value.chars().count() <= SHOWN {
        value.to_string()
    } else {
        format!("{}...", value.chars().take(SHOWN).collect::<String>())
    }
}

struct Validator<'i> {
    errors: Vec<ValidationError>,
    /// source -> (policy, object that first set it), across IDMS, ICSP and ITMS.
    policies: HashMap<&'i str, (&'static str, Arc<str>)>,
    /// Which objects were read from files, where the rules the API server keeps are checked too.
    origins: &'i BTreeMap<String, crate::model::Origin>,
}

impl<'i> Validator<'i> {
    fn error(&mut self, object: &str, field: &str, value: &str, message: impl Into<String>) {
        self.error_with_fix(object, field, value, message, None);
    }

    fn error_with_fix(
        &mut self,
        object: &str,
        field: &str,
        value: &str,
        message: impl Into<String>,
        fix: Option<String>,
    ) {
        self.errors.push(ValidationError {
            object: object.to_string(),
            field: field.to_string(),
            value: value.to_string(),
            message: message.into(),
            fix,
            ..Default::default()
        });
    }

    fn entries(
        &mut self,
        object: &Arc<str>,
        path: &str,
        entries: &'i [MirrorEntry],
        has_policy_field: bool,
        out: &mut Vec<SourceEntry>,
    ) {
        for (i, entry) in entries.iter().enumerate() {
            // Field paths are only built for messages: this loop runs once per entry of every object.
            let at = || format!("{path}[{i}]");
            let errors_before = self.errors.len();
            let source = entry.source.as_str();
            if !scope::is_valid_source(source) {
                let why = if source.is_empty() {
                    "source must not be empty"
                } else {
                    "invalid source: expected host[:port][/path] with a lowercase path, or *.domain (no scheme, tag or digest)"
                };
                self.error_with_fix(object, &format!("{}.source", at()), &shown(source), why, hint::fix(source, true));
            }
            let policy = match entry.mirror_source_policy.as_deref() {
                None | Some("") => ALLOW_CONTACTING_SOURCE,
                Some(ALLOW_CONTACTING_SOURCE) if has_policy_field => ALLOW_CONTACTING_SOURCE,
                Some(NEVER_CONTACT_SOURCE) if has_policy_field => NEVER_CONTACT_SOURCE,
                Some(other) => {
                    let (why, fix) = if has_policy_field {
                        let meant = [ALLOW_CONTACTING_SOURCE, NEVER_CONTACT_SOURCE]
                            .into_iter()
                            .find(|p| p.eq_ignore_ascii_case(other.trim()));
                        let fix = match meant {
                            Some(p) => format!("write `{p}`"),
                            None => format!("write `{ALLOW_CONTACTING_SOURCE}` or `{NEVER_CONTACT_SOURCE}`"),
                        };
                        ("mirrorSourcePolicy must be AllowContactingSource or NeverContactSource", fix)
                    } else {
                        (
                            "an ImageContentSourcePolicy has no mirrorSourcePolicy (it always means AllowContactingSource)",
                            "migrate it to an ImageDigestMirrorSet, which has mirrorSourcePolicy".to_string(),
                        )
                    };
                    self.error_with_fix(object, &format!("{}.mirrorSourcePolicy", at()), &shown(other), why, Some(fix));
                    ALLOW_CONTACTING_SOURCE
                }
            };
            match self.policies.get(source) {
                Some((first, first_object)) if *first != policy => {
                    let (first, first_object) = (*first, Arc::clone(first_object));
                    self.policy_conflict(object, &at(), entry, has_policy_field, policy, first, &first_object);
                }
                Some(_) => {}
                None => {
                    self.policies.insert(source, (policy, Arc::clone(object)));
                }
            }
            let mut first_at: HashMap<&str, usize> = HashMap::new();
            let from_file = self.origins.contains_key(&**object);
            for (j, mirror) in entry.mirrors.iter().enumerate() {
                let field = || format!("{}.mirrors[{j}]", at());
                if !scope::is_valid_mirror(mirror) {
                    let why = "invalid mirror: expected host[:port][/path] with a lowercase path (no scheme, tag, digest or wildcard)";
                    self.error_with_fix(object, &field(), &shown(mirror), why, hint::fix(mirror, false));
                }
                // A set in the API (openshift/api for IDMS and ITMS, mirrorconf's CRD for ICSP): a
                // repeat in a file is refused like the API server would; one in a cluster's ICSP
                // is merged away, since refusing it would stop every agent.
                if from_file {
                    if let Some(first) = first_at.get(mirror.as_str()) {
                        let why = format!("listed twice in this entry (mirrors is a set); first at mirrors[{first}]");
                        self.error_with_fix(object, &field(), &shown(mirror), why, Some("remove the repeat".into()));
                    } else {
                        first_at.insert(mirror, j);
                    }
                }
                if policy == NEVER_CONTACT_SOURCE && mirror == source {
                    let why = "cannot set mirrorSourcePolicy: NeverContactSource if the source is one of the mirrors";
                    let fix = "remove the source from its mirrors, or allow contacting the source".to_string();
                    self.error_with_fix(object, &field(), &shown(mirror), why, Some(fix));
                }
            }
            let real_mirror = entry.mirrors.iter().any(|m| m != source);
            if self.errors.len() == errors_before && real_mirror {
                out.push(SourceEntry {
                    object: Arc::clone(object),
                    source: source.to_string(),
                    mirrors: entry.mirrors.clone(),
                    never_contact_source: policy == NEVER_CONTACT_SOURCE,
                });
            }
        }
    }

    /// Two objects give one source different policies. An ImageContentSourcePolicy has no
    /// `mirrorSourcePolicy` field to point at: it always means AllowContactingSource, and moving it
    /// to an ImageDigestMirrorSet is how it gets another.
    #[allow(clippy::too_many_arguments)]
    fn policy_conflict(
        &mut self,
        object: &Arc<str>,
        at: &str,
        entry: &MirrorEntry,
        has_policy_field: bool,
        policy: &str,
        first: &str,
        first_object: &str,
    ) {
        let is_icsp = |o: &str| o.starts_with("ImageContentSourcePolicy/");
        let conflict = "conflicting mirrorSourcePolicy is set for the same source";
        if !has_policy_field {
            let message = format!(
                "{conflict}: an ImageContentSourcePolicy has no mirrorSourcePolicy and means {ALLOW_CONTACTING_SOURCE}, while {first_object} sets {first}"
            );
            let fix = format!("migrate {object} to an ImageDigestMirrorSet with mirrorSourcePolicy: {first}");
            self.error_with_fix(object, &format!("{at}.source"), &shown(&entry.source), message, Some(fix));
        } else if is_icsp(first_object) {
            let message = format!(
                "{conflict} {:?}: {first_object} means {first} (an ImageContentSourcePolicy has no mirrorSourcePolicy)",
                shown(&entry.source)
            );
            let fix = format!("migrate {first_object} to an ImageDigestMirrorSet with mirrorSourcePolicy: {policy}");
            self.error_with_fix(object, &format!("{at}.mirrorSourcePolicy"), policy, message, Some(fix));
        } else {
            let message = format!("{conflict} {:?}: {first_object} sets {first}", shown(&entry.source));
            let fix = "give the source one mirrorSourcePolicy in every object".to_string();
            self.error_with_fix(object, &format!("{at}.mirrorSourcePolicy"), policy, message, Some(fix));
        }
    }

    /// `insecureRegistries`, `blockedRegistries`, `allowedRegistries`: what the API server accepts
    /// (openshift/api config/v1): at most 1,024 items, each 1 to 256 characters matching the IDMS
    /// `source` pattern.
    fn scopes(&mut self, object: &str, path: &str, scopes: &[String]) {
        if scopes.len() > scope::MAX_SCOPES {
            // One error for the list, not one per item.
            let count = format!("{} items", scopes.len());
            let why = format!("more than {} items (the API server's limit)", scope::MAX_SCOPES);
            self.error(object, path, &count, why);
            return;
        }
        for (i, s) in scopes.iter().enumerate() {
            let chars = s.chars().count();
            let why = if s.is_empty() {
                "a registry scope must not be empty".to_string()
            } else if chars > scope::MAX_SCOPE_CHARS {
                format!("{chars} characters, more than {} (the API server's limit)", scope::MAX_SCOPE_CHARS)
            } else if !scope::is_valid_registries_conf_scope(s) {
                "invalid registry scope: expected host[:port][/path] with a lowercase path, or *.domain, as an ImageDigestMirrorSet source (no tag, digest or '..')".to_string()
            } else {
                continue;
            };
            self.error_with_fix(object, &format!("{path}[{i}]"), &shown(s), why, hint::fix(s, true));
        }
    }

    /// `containerRuntimeSearchRegistries`: a set (`x-kubernetes-list-type: set`), which the API
    /// server enforces, of registry hosts. Its CRD declares `format: hostname` on the list itself,
    /// where the API server's format check does not apply (kube-openapi checks formats on strings
    /// only), so a cluster can hold `registry.corp:5000`, which CRI-O accepts. Each item must
    /// therefore be a registry `host[:port]` by the mirror pattern without a path, not a bare
    /// [`scope::is_hostname`].
    fn search_registries(&mut self, object: &str, path: &str, registries: &[String]) {
        let mut first_at: HashMap<&str, usize> = HashMap::new();
        for (i, r) in registries.iter().enumerate() {
            let field = format!("{path}[{i}]");
            if !scope::is_valid_mirror(r) || r.contains('/') {
                let why = "a search registry must be a registry host[:port] (no path, wildcard, tag or scheme)";
                self.error(object, &field, &shown(r), why);
            } else if let Some(first) = first_at.get(r.as_str()) {
                self.error(object, &field, r, format!("listed twice (the list is a set); first at {path}[{first}]"));
            } else {
                first_at.insert(r, i);
            }
        }
    }
}

#[cfg(test)]
mod tests;
