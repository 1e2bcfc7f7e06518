//! Names partners choose: the files in a drop (an SFTP or FTPS listing), the files a local glob
//! matches, the members of a zip archive. Such a name may hold a newline, a tab or an escape
//! sequence, legal on SFTP and Linux, and put raw into a log line, a one-per-line list or a path
//! template it forges lines or paths (`x\n.profile\ny.csv` once made the temporary-file journal
//! remove `./.profile`). The policy: a file whose name has a control character is not read; it
//! is skipped with a warning naming it escaped, `{:?}`-style (`"x\n.profile\ny.csv"`), so the
//! operator sees it and the partner can rename it. What still reaches a path from a name
//! (`{source_stem}`) is made safe by [`crate::template`].

/// Whether `name` has a control character: U+0000 to U+001F (newline, carriage return, tab,
/// escape...), U+007F (delete) or U+0080 to U+009F.
pub fn has_control(name: &str) -> bool {
    name.chars().any(char::is_control)
}

/// The most bytes of a file name (Linux, macOS, Windows, most servers).
pub const MAX_NAME_BYTES: usize = 255;

/// `name` cut to at most `max` bytes on a character boundary.
pub fn cut(name: &str, max: usize) -> &str {
    let mut end = name.len().min(max);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// The warning for a file skipped because its name (`shown` in full) has a control character.
pub fn skipped_warning(shown: &str) -> String {
    format!(
        "{shown:?} is not read: its name has a control character, which could forge log lines or paths; rename the file to have it read"
    )
}

/// `path` without a `.gz` or `.gzip` extension (any case), if it has one.
pub fn strip_gzip_suffix(path: &str) -> Option<&str> {
    [".gz", ".gzip"].iter().find_map(|suffix| {
        let cut = path
            .len()
            .checked_sub(suffix.len())
            .filter(|&cut| cut > 0)?;
        (path.is_char_boundary(cut) && path[cut..].eq_ignore_ascii_case(suffix))
            .then(|| &path[..cut])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_found_and_shown_escaped() {
        assert!(has_control("x\n.profile\ny.csv"));
        assert!(has_control("a\tb"));
        assert!(has_control("a\u{1b}[31mb"));
        assert!(has_control("a\u{7f}"));
        assert!(!has_control("Bestellungen März.csv"));
        assert_eq!(cut("aé", 2), "a");
        assert_eq!(cut("aé", 3), "aé");
        assert_eq!(
            skipped_warning("in/x\n.profile\ny.csv"),
            r#""in/x\n.profile\ny.csv" is not read: its name has a control character, which could forge log lines or paths; rename the file to have it read"#
        );
    }
}
