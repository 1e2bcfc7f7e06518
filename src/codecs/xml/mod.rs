//! XML documents: records are the elements at `record_path` (`orders/order`), read as a stream
//! of quick-xml events and written back in the same shape, so one set of options decodes and
//! encodes the same files.
//!
//! XML has no types and no arrays, so the mapping is a convention shared by both directions:
//! attributes are fields named with a prefix (`@id`), child elements are fields, repeated
//! children are arrays, elements with attributes or children are objects, the text of such an
//! element is the `#text` field, and an empty element is null. DTDs are refused outright: a
//! file exchange has no use for them, and entity expansion is how XML inputs attack parsers.

mod read;
mod split;
mod write;

use schemars::JsonSchema;
use serde::Deserialize;

pub use self::read::XmlDecoder;
pub use self::write::XmlEncoder;

/// An XML document whose records are repeated elements, for reading and writing.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct XmlOptions {
    /// Where the records are: the element names from the root element down to the record
    /// element, separated by `/`. `"orders/order"` reads every `<order>` in the root
    /// `<orders>`; elements elsewhere are skipped. A single name (`"invoice"`) makes the root
    /// element the one record of the document. Output is written in the same envelope.
    /// Default: reading, every child element of the root is a record, whatever the names;
    /// writing, `"records/record"`.
    pub record_path: Option<String>,
    /// What attribute names are prefixed with to make field names: `id="7"` is the field
    /// `@id`. When writing, fields whose names start with it are written as attributes. `""` is
    /// allowed (attributes are then plain fields, and only `attributes` are written as
    /// attributes). Default `"@"`.
    pub attribute_prefix: String,
    /// The field that holds the text of an element that also has attributes or child elements
    /// (`<price currency="EUR">12.50</price>` is `{"@currency": "EUR", "#text": "12.50"}`).
    /// An element with text only is just its text. Default `"#text"`.
    pub text_key: String,
    /// Nested elements as dotted field names (`customer.name`) instead of nested objects.
    /// When writing, dotted names are nested back into elements. Repeated elements stay
    /// arrays either way. Default `false`.
    pub flatten: bool,
    /// Namespace prefixes of element and attribute names: `"strip"` drops them (`ns:order` is
    /// `order`, and `xmlns` declarations are not fields), `"keep"` keeps names as written
    /// (`ns:order`, declarations as attributes). `record_path` is matched against the names
    /// this gives. Default `"strip"`.
    pub namespaces: Namespaces,
    /// Input only: child elements that are always arrays, even when a record has just one
    /// (`arrays = ["line"]`), so that one order line has the same shape as several. Default:
    /// none (one child element is its value, several an array).
    pub arrays: Vec<String>,
    /// Output only: record fields written as attributes of the record element although their
    /// names lack the `attribute_prefix` (`attributes = ["id"]` writes `<record id="7">`).
    /// Default: none.
    pub attributes: Vec<String>,
    /// Output only: indent nested elements, two spaces a level, one element per line. Default
    /// `false`: one record per line, which keeps diffs readable and files small.
    pub pretty: bool,
}

impl Default for XmlOptions {
    fn default() -> Self {
        XmlOptions {
            record_path: None,
            attribute_prefix: "@".into(),
            text_key: "#text".into(),
            flatten: false,
            namespaces: Namespaces::Strip,
            attributes: Vec::new(),
            arrays: Vec::new(),
            pretty: false,
        }
    }
}

/// What happens to namespace prefixes in names: `strip` drops them (`ns:order` is `order`) and
/// `xmlns` declarations, `keep` keeps names as written, declarations included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Namespaces {
    #[default]
    Strip,
    Keep,
}

impl XmlOptions {
    pub(crate) fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if let Some(record_path) = &self.record_path {
            if record_path.is_empty() {
                problems.push((
                    "record_path",
                    "`record_path` is empty: name the root and record elements, e.g. \"orders/order\""
                        .to_string(),
                ));
            } else if let Some(step) = record_path.split('/').find(|step| !is_xml_name(step)) {
                problems.push((
                    "record_path",
                    format!("`{step}` in `{record_path}` is not an XML element name"),
                ));
            }
        }
        if self.text_key.is_empty() {
            problems.push(("text_key", "`text_key` must not be empty".to_string()));
        }
        if let Some(name) = self.attributes.iter().find(|name| !is_xml_name(name)) {
            problems.push((
                "attributes",
                format!("`{name}` is not an XML attribute name"),
            ));
        }
        problems
    }

    /// The element names of `record_path`, root first; `None` for any root and its children.
    fn path(&self) -> Option<Vec<String>> {
        let record_path = self.record_path.as_ref()?;
        Some(record_path.split('/').map(str::to_string).collect())
    }
}

/// Whether `name` is an XML 1.0 `Name` (element or attribute name, prefix included).
pub(crate) fn is_xml_name(name: &str) -> bool {
    // The encoder checks every field name of every record: most are ASCII.
    if let Some((&first, rest)) = name.as_bytes().split_first()
        && name.is_ascii()
    {
        return (first.is_ascii_alphabetic() || matches!(first, b'_' | b':'))
            && rest
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-' | b'.'));
    }
    let mut chars = name.chars();
    chars.next().is_some_and(is_name_start_char) && chars.all(is_name_char)
}

fn is_name_start_char(c: char) -> bool {
    matches!(c,
        ':' | 'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c,
            '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

#[cfg(test)]
mod tests;
