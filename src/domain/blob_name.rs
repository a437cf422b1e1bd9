//! Container and blob name rules. The local store maps names to paths, so a name that
//! could escape its container (`..`, absolute paths, backslashes) is refused here, once,
//! for every store.

/// Why a name was refused.
pub type NameError = &'static str;

/// Azure container names: 3–63 characters, lowercase letters, digits and single hyphens,
/// starting and ending with a letter or digit.
pub fn check_container(name: &str) -> Result<(), NameError> {
    let len = name.len();
    if !(3..=63).contains(&len) {
        return Err("container names are 3 to 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("container names use lowercase letters, digits and hyphens");
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err(
            "container names start and end with a letter or digit and have no double hyphen",
        );
    }
    Ok(())
}

/// Blob names: 1–1024 characters, `/`-separated segments none of which is empty, `.` or
/// `..`; no backslash, no control characters. Spaces and Unicode are allowed, as in Azure.
pub fn check_blob(name: &str) -> Result<(), NameError> {
    if name.is_empty() || name.chars().count() > 1024 {
        return Err("blob names are 1 to 1024 characters");
    }
    if name.starts_with('/') {
        return Err("blob names are relative to their container");
    }
    if name.contains('\\') {
        return Err("blob names may not contain a backslash");
    }
    if name.chars().any(char::is_control) {
        return Err("blob names may not contain control characters");
    }
    for seg in name.split('/') {
        match seg {
            "" => return Err("blob names may not contain an empty path segment"),
            "." | ".." => return Err("blob names may not contain '.' or '..' segments"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_follow_azure_rules() {
        for ok in ["datasets", "state", "azure-webjobs-hosts", "a1b"] {
            assert!(check_container(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "Datasets",
            "-abc",
            "abc-",
            "a--b",
            "a_b",
            &"a".repeat(64),
            ".tmp",
        ] {
            assert!(check_container(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn blob_names_that_escape_their_container_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "..",
            "a/./b",
            "a//b",
            "a\\b",
            "a/",
            "x\u{0}y",
        ] {
            assert!(check_blob(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn blob_names_with_spaces_and_unicode_are_accepted() {
        for ok in [
            "p/s/train.jsonl",
            "my project/données ü/train set.jsonl",
            "a.b/c..d",
            "日本/データ.jsonl",
        ] {
            assert!(check_blob(ok).is_ok(), "{ok}");
        }
    }
}
