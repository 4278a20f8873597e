//! The one shape of every input problem, for people (one line each) and for programs
//! (`validate --output json`): where (file and line, or the object in the cluster), which field,
//! which value, what is wrong and how to fix it.

use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

/// One problem in the input. Every key is always present in JSON (`null` when unknown), so the
/// records keep one shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file the object was read from; `None` for objects read from a cluster.
    pub file: Option<PathBuf>,
    /// 1-based line in `file`: the field's own when it can be found, else the object's first.
    pub line: Option<usize>,
    /// `Kind/name`.
    pub object: Option<String>,
    /// Field path inside the object, e.g. `spec.imageDigestMirrors[1].mirrors[0]`.
    pub field: Option<String>,
    pub value: Option<String>,
    pub message: String,
    pub fix: Option<String>,
    /// The document inside a multi-document file, said when no line is known.
    #[serde(skip)]
    pub document: Option<usize>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            match (self.line, self.document) {
                (Some(line), _) => write!(f, ":{line}")?,
                (None, Some(n)) => write!(f, " (document {n})")?,
                (None, None) => {}
            }
            write!(f, ": ")?;
        }
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        if let Some(field) = self.field.as_deref().filter(|f| !f.is_empty()) {
            write!(f, "{field}")?;
            if let Some(value) = &self.value {
                write!(f, " = {value:?}")?;
            }
            write!(f, ": ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(fix) = &self.fix {
            let separator = if self.message.ends_with('?') { " " } else { "; " };
            write!(f, "{separator}fix: {fix}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_names_file_line_object_field_value_once_and_fix() {
        let d = Diagnostic {
            file: Some("m.yaml".into()),
            line: Some(7),
            object: Some("ImageDigestMirrorSet/a".into()),
            field: Some("spec.imageDigestMirrors[0].mirrors[0]".into()),
            value: Some("m.corp/app:v1".into()),
            message: "invalid mirror".into(),
            fix: Some("drop the tag `:v1`".into()),
            document: Some(2),
        };
        assert_eq!(
            d.to_string(),
            "m.yaml:7: ImageDigestMirrorSet/a: spec.imageDigestMirrors[0].mirrors[0] = \"m.corp/app:v1\": invalid mirror; fix: drop the tag `:v1`"
        );
        let cluster = Diagnostic { file: None, line: None, fix: None, ..d.clone() };
        assert!(cluster.to_string().starts_with("ImageDigestMirrorSet/a: spec."), "{cluster}");
        let no_line = Diagnostic { line: None, ..d };
        assert!(no_line.to_string().starts_with("m.yaml (document 2): "), "{no_line}");
    }

    #[test]
    fn json_keeps_every_key() {
        let json = serde_json::to_string(&Diagnostic { message: "m".into(), document: Some(1), ..Default::default() });
        assert_eq!(
            json.unwrap(),
            r#"{"file":null,"line":null,"object":null,"field":null,"value":null,"message":"m","fix":null}"#
        );
    }
}
