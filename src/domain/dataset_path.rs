//! Where a dropped file sits in the `datasets` container, and what it means.
//!
//! `datasets/{project}/{submission}/{file}` is a submission; its `manifest.json` (uploaded
//! last) starts the run. `datasets/{project}/{file}.jsonl` is a bare drop that runs with
//! the project's defaults. Anything else is refused with a reason.

use super::blob_name;

/// The container datasets are dropped into.
pub const DATASETS_CONTAINER: &str = "datasets";

/// A classified dataset blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetPath {
    /// `{project}/{submission}/manifest.json`: the submission is complete.
    Manifest {
        /// Project name.
        project: String,
        /// Submission name.
        submission: String,
    },
    /// `{project}/{submission}/{file}` other than the manifest: part of a submission.
    SubmissionFile {
        /// Project name.
        project: String,
        /// Submission name.
        submission: String,
        /// File name.
        file: String,
    },
    /// `{project}/{file}.jsonl`: a bare drop with the project's defaults.
    BareDrop {
        /// Project name.
        project: String,
        /// File name.
        file: String,
    },
}

/// Why a blob is not a dataset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatasetPathError {
    /// Not in the datasets container.
    #[error("blob is in container {0:?}, not {DATASETS_CONTAINER:?}")]
    WrongContainer(String),
    /// Not a name storage would accept, or one that escapes its container.
    #[error("invalid blob name: {0}")]
    InvalidName(&'static str),
    /// A name outside the documented layout.
    #[error("{0}")]
    Layout(&'static str),
    /// The project segment is not a valid project name.
    #[error("datasets/{path}: {source}")]
    Project {
        /// The blob name.
        path: String,
        /// What is wrong with the project name.
        source: super::project::BadProjectName,
    },
}

impl DatasetPath {
    /// Classifies `container/name`.
    pub fn parse(container: &str, name: &str) -> Result<Self, DatasetPathError> {
        if container != DATASETS_CONTAINER {
            return Err(DatasetPathError::WrongContainer(container.to_owned()));
        }
        blob_name::check_blob(name).map_err(DatasetPathError::InvalidName)?;
        let segs: Vec<&str> = name.split('/').collect();
        if segs.len() >= 2 {
            super::project::check(segs[0]).map_err(|source| DatasetPathError::Project {
                path: name.to_owned(),
                source,
            })?;
        }
        match segs.as_slice() {
            [project, file] if file.ends_with(".jsonl") => Ok(Self::BareDrop {
                project: (*project).to_owned(),
                file: (*file).to_owned(),
            }),
            [_, _] => Err(DatasetPathError::Layout(
                "a bare drop must be a .jsonl file: datasets/{project}/{file}.jsonl",
            )),
            [project, submission, "manifest.json"] => Ok(Self::Manifest {
                project: (*project).to_owned(),
                submission: (*submission).to_owned(),
            }),
            [project, submission, file] => Ok(Self::SubmissionFile {
                project: (*project).to_owned(),
                submission: (*submission).to_owned(),
                file: (*file).to_owned(),
            }),
            _ => Err(DatasetPathError::Layout(
                "expected datasets/{project}/{submission}/{file} or datasets/{project}/{file}.jsonl",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_completes_a_submission() {
        assert_eq!(
            DatasetPath::parse("datasets", "acme/s1/manifest.json"),
            Ok(DatasetPath::Manifest {
                project: "acme".into(),
                submission: "s1".into()
            })
        );
    }

    #[test]
    fn a_jsonl_directly_under_a_project_is_a_bare_drop() {
        assert_eq!(
            DatasetPath::parse("datasets", "acme/train.jsonl"),
            Ok(DatasetPath::BareDrop {
                project: "acme".into(),
                file: "train.jsonl".into()
            })
        );
    }

    #[test]
    fn names_outside_the_layout_or_the_container_are_refused() {
        assert!(matches!(
            DatasetPath::parse("state", "a/b.jsonl"),
            Err(DatasetPathError::WrongContainer(_))
        ));
        assert!(matches!(
            DatasetPath::parse("datasets", "a/../b/c.jsonl"),
            Err(DatasetPathError::InvalidName(_))
        ));
        assert!(matches!(
            DatasetPath::parse("datasets", "train.jsonl"),
            Err(DatasetPathError::Layout(_))
        ));
        assert!(matches!(
            DatasetPath::parse("datasets", "a/readme.txt"),
            Err(DatasetPathError::Layout(_))
        ));
        assert!(matches!(
            DatasetPath::parse("datasets", "a/b/c/d.jsonl"),
            Err(DatasetPathError::Layout(_))
        ));
    }

    #[test]
    fn the_project_segment_must_be_a_valid_project_name() {
        let e = DatasetPath::parse("datasets", "Acme_Support/s1/manifest.json")
            .expect_err("upper case and underscore");
        assert!(matches!(e, DatasetPathError::Project { .. }));
        assert!(
            e.to_string().contains("Acme_Support/s1/manifest.json"),
            "{e}"
        );
        assert!(e.to_string().contains("lower-case letters"), "{e}");
    }
}
