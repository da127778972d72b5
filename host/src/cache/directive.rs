//! What one request asks of the cache: the standard `Cache-Control` request directives
//! (`no-cache`: do not answer from the cache, but keep the fresh answer; `no-store`:
//! neither read nor keep), and the same in `x-cache-control` for clients whose proxies
//! rewrite `Cache-Control`, where `cache` also opts a request in for a model the config
//! does not cache.

/// A request's cache directives; the default asks nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directive {
    /// Do not answer from the cache (the answer may still be kept).
    pub no_cache: bool,
    /// Neither answer from the cache nor keep the answer.
    pub no_store: bool,
    /// Cache this request even where the config does not (with the global TTL).
    pub opt_in: bool,
}

impl Directive {
    /// The directives in the values of `Cache-Control` and `x-cache-control` headers
    /// (comma-separated, case-insensitive; unknown ones, such as `max-age`, are left
    /// to HTTP caches and ignored here).
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Directive {
        let mut directive = Directive::default();
        for token in values.into_iter().flat_map(|v| v.split(',')) {
            let token = token.trim();
            if token.eq_ignore_ascii_case("no-cache") {
                directive.no_cache = true;
            } else if token.eq_ignore_ascii_case("no-store") {
                directive.no_store = true;
            } else if token.eq_ignore_ascii_case("cache") {
                directive.opt_in = true;
            }
        }
        directive
    }

    /// Whether an answer may come from the cache.
    pub fn may_read(&self) -> bool {
        !self.no_cache && !self.no_store
    }

    /// Whether the answer may be kept.
    pub fn may_store(&self) -> bool {
        !self.no_store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_and_host_directives_are_read_from_every_value() {
        let d = Directive::parse(["max-age=0, No-Cache", "cache"]);
        assert_eq!(
            d,
            Directive {
                no_cache: true,
                no_store: false,
                opt_in: true
            }
        );
        assert!(!d.may_read() && d.may_store());
        let d = Directive::parse(["no-store"]);
        assert!(!d.may_read() && !d.may_store());
        assert!(Directive::parse([]).may_read());
    }
}
