//! Image references as Docker normalises them: `nginx:1` and
//! `docker.io/library/nginx:1` name the same repository.

/// A parsed reference: normalised repository, and tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// Parses `[registry/]path[:tag][@digest]`; None for Engine 20.10's
/// `<none>:<none>` placeholders and anything that is no reference.
pub fn parse(raw: &str) -> Option<Reference> {
    let raw = raw.trim();
    if raw.is_empty()
        || crate::domain::is_placeholder_reference(raw)
        || raw.len() > 1024
        || raw.chars().any(|c| c.is_whitespace())
    {
        return None;
    }
    let (name_tag, digest) = match raw.split_once('@') {
        Some((n, d)) if !d.is_empty() => (n, Some(d.to_owned())),
        Some(_) => return None,
        None => (raw, None),
    };
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => {
            let at = last_slash + i;
            (
                &name_tag[..at],
                Some(name_tag[at + 1..].to_owned()).filter(|t| !t.is_empty()),
            )
        }
        None => (name_tag, None),
    };
    if name.is_empty() || name.starts_with('/') || name.ends_with('/') {
        return None;
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_ascii_lowercase(), rest.to_owned())
        }
        _ => ("docker.io".to_owned(), name.to_owned()),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io".to_owned()
    } else {
        domain
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    Some(Reference {
        repository: format!("{domain}/{path}"),
        tag,
        digest,
    })
}

/// The normalised repository of a reference, if it is one.
pub fn repository(raw: &str) -> Option<String> {
    parse(raw).map(|r| r.repository)
}

/// `repository:tag` with the repository normalised, for display and matching.
pub fn normalized(raw: &str) -> Option<String> {
    let r = parse(raw)?;
    Some(match (&r.tag, &r.digest) {
        (_, Some(d)) => format!("{}@{d}", r.repository),
        (Some(t), None) => format!("{}:{t}", r.repository),
        (None, None) => r.repository,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_short_names_get_docker_io_and_library() {
        for raw in [
            "nginx:1.25",
            "library/nginx:1.25",
            "docker.io/nginx:1.25",
            "docker.io/library/nginx:1.25",
            "index.docker.io/library/nginx:1.25",
        ] {
            assert_eq!(
                repository(raw).as_deref(),
                Some("docker.io/library/nginx"),
                "{raw}"
            );
        }
        assert_eq!(
            repository("nextcloud/aio:latest").as_deref(),
            Some("docker.io/nextcloud/aio")
        );
    }

    #[test]
    fn registries_with_ports_and_suffixed_tags_parse() {
        let r = parse("mirror.local:5000/nextcloud/llm2:1.2.0-cuda").unwrap();
        assert_eq!(r.repository, "mirror.local:5000/nextcloud/llm2");
        assert_eq!(r.tag.as_deref(), Some("1.2.0-cuda"));
        assert_eq!(
            repository("ghcr.io/nextcloud/context_chat_backend:4.0.0-rocm").as_deref(),
            Some("ghcr.io/nextcloud/context_chat_backend")
        );
        assert_eq!(
            repository("localhost/app:1").as_deref(),
            Some("localhost/app")
        );
    }

    #[test]
    fn digests_are_kept_apart_from_tags() {
        let r = parse("ghcr.io/nextcloud/app@sha256:abc").unwrap();
        assert_eq!(
            (r.repository.as_str(), r.tag, r.digest.as_deref()),
            ("ghcr.io/nextcloud/app", None, Some("sha256:abc"))
        );
        assert_eq!(
            normalized("nginx@sha256:abc").as_deref(),
            Some("docker.io/library/nginx@sha256:abc")
        );
    }

    #[test]
    fn placeholders_and_junk_are_no_references() {
        for raw in [
            "<none>:<none>",
            "<none>@<none>",
            "",
            "a b:1",
            "/x:1",
            "x/:1",
            "x@",
        ] {
            assert!(parse(raw).is_none(), "{raw:?}");
        }
    }
}
