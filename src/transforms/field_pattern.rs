//! Field lists that may hold globs (`"customer.*"`, `"*_id"`), shared by `select`, `drop` and
//! `reorder`: an entry with `*` or `?` is a glob (where `[...]` is a character class too), any
//! other entry is a field name taken literally, so a name like `items[0]` needs no escaping.

use crate::config::Invalid;

/// One entry of a field list.
#[derive(Debug, Clone)]
pub enum FieldPattern {
    Name(String),
    Glob(glob::Pattern),
}

impl FieldPattern {
    /// `entry` as a name or a glob; the reason when it is a glob that does not parse.
    pub fn parse(entry: &str) -> Result<Self, String> {
        if !entry.contains(['*', '?']) {
            return Ok(FieldPattern::Name(entry.to_string()));
        }
        glob::Pattern::new(entry)
            .map(FieldPattern::Glob)
            .map_err(|e| {
                format!(
                    "`{entry}` is not a valid glob ({}); write `[*]` or `[?]` for a literal `*` or `?`",
                    e.msg
                )
            })
    }

    pub fn matches(&self, field: &str) -> bool {
        match self {
            FieldPattern::Name(name) => name == field,
            FieldPattern::Glob(glob) => glob.matches(field),
        }
    }
}

/// Parses every entry of `entries` (the config key `key`); the problems: an empty list, an
/// entry listed twice, a glob that does not parse.
pub fn parse_list(key: &str, entries: &[String], empty: &str) -> (Vec<FieldPattern>, Vec<Invalid>) {
    let mut problems = Vec::new();
    if entries.is_empty() {
        problems.push(Invalid::new(key, format!("`{key}` is empty: {empty}")));
    }
    let mut seen = std::collections::HashSet::new();
    let mut patterns = Vec::with_capacity(entries.len());
    for entry in entries {
        if !seen.insert(entry) {
            problems.push(Invalid::new(key, format!("`{entry}` is listed twice")));
        }
        match FieldPattern::parse(entry) {
            Ok(pattern) => patterns.push(pattern),
            Err(message) => problems.push(Invalid::new(key, message)),
        }
    }
    (patterns, problems)
}

/// Parses entries that validation has accepted.
pub fn parse_checked(entries: &[String]) -> Vec<FieldPattern> {
    entries
        .iter()
        .map(|entry| FieldPattern::parse(entry).expect("validated field list"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_literal_and_globs_match_across_dots() {
        let name = FieldPattern::parse("items[0]").unwrap();
        assert!(name.matches("items[0]"));
        assert!(!name.matches("items0"));
        let glob = FieldPattern::parse("customer.*").unwrap();
        assert!(glob.matches("customer.name"));
        assert!(glob.matches("customer.address.city"));
        assert!(!glob.matches("customer"));
        assert!(
            FieldPattern::parse("*_id")
                .unwrap()
                .matches("kündigungs_id")
        );
        assert!(FieldPattern::parse("a[*]").unwrap().matches("a*"));
    }

    #[test]
    fn a_broken_glob_and_a_repeated_entry_are_problems() {
        let (_, problems) = parse_list(
            "fields",
            &["[*_id".to_string(), "a".to_string(), "a".to_string()],
            "list fields",
        );
        let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "`[*_id` is not a valid glob (invalid range pattern); write `[*]` or `[?]` for a literal `*` or `?`",
                "`a` is listed twice"
            ]
        );
    }
}
