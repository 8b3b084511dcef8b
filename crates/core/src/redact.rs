//! Credentials never reach messages or logs.

/// A URL or address for messages: `scheme://user:password@host` loses its
/// credentials (`scheme://***@host`); anything else is returned as it is.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}***{}", &url[..scheme + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn credentials_never_reach_messages() {
        assert_eq!(redact_url("redis://user:s3cret@10.0.0.1:6379/0"), "redis://***@10.0.0.1:6379/0");
        assert_eq!(redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"), "amqp://***@127.0.0.1:5672/%2f");
        assert_eq!(redact_url("localhost:6379"), "localhost:6379");
        assert_eq!(redact_url("redis://10.0.0.1:6379"), "redis://10.0.0.1:6379");
    }
}
