use std::io::Cursor;

use proptest::prelude::*;

use super::*;
use crate::codecs::limit::DEFAULT_MAX_RECORD_BYTES;
use crate::codecs::testing::{SharedBuffer, read_all};
use crate::error::CodecError;
use crate::record::{Record, Value};
use crate::stage::{Decoder, Encoder};

fn orders() -> XmlOptions {
    XmlOptions {
        record_path: Some("orders/order".into()),
        ..XmlOptions::default()
    }
}

fn decode_bytes(input: &[u8], options: &XmlOptions) -> Result<Vec<Record>, CodecError> {
    let input = Box::new(Cursor::new(input.to_vec()));
    read_all(&mut XmlDecoder::new(
        input,
        "t.xml",
        options,
        None,
        DEFAULT_MAX_RECORD_BYTES,
    )?)
}

fn decode(input: &str, options: &XmlOptions) -> Result<Vec<Record>, CodecError> {
    decode_bytes(input.as_bytes(), options)
}

fn error(input: &str, options: &XmlOptions) -> String {
    decode(input, options)
        .expect_err("the input is refused")
        .to_string()
}

fn encode(records: &[Record], options: &XmlOptions) -> Result<String, CodecError> {
    let buffer = SharedBuffer::default();
    let mut encoder = Box::new(XmlEncoder::new(
        Box::new(buffer.clone()),
        "o.xml",
        options,
        "UTF-8",
    ));
    encoder.write_batch(records)?;
    encoder.finish()?;
    Ok(buffer.text())
}

fn s(text: &str) -> Value {
    Value::String(text.into())
}

fn rec(fields: &[(&str, Value)]) -> Record {
    fields
        .iter()
        .map(|(name, value)| (FieldName::from(*name), value.clone()))
        .collect()
}

fn obj(fields: &[(&str, Value)]) -> Value {
    Value::Object(rec(fields))
}

use crate::record::FieldName;

#[test]
fn attributes_children_nesting_and_repeats() {
    let input = r#"<?xml version="1.0"?>
<orders generated="2024-08-01">
  <meta><count>2</count></meta>
  <order id="1" status="open">
    <customer vip="yes"><name>Ann</name><city>Oslo</city></customer>
    <item>apple</item>
    <item>pear</item>
    <price currency="EUR">12.50</price>
    <note/>
    <comment>  spaced  </comment>
  </order>
  <order id="2"><item>fig</item></order>
</orders>"#;
    let records = decode(input, &orders()).unwrap();
    assert_eq!(
        records,
        [
            rec(&[
                ("@id", s("1")),
                ("@status", s("open")),
                (
                    "customer",
                    obj(&[("@vip", s("yes")), ("name", s("Ann")), ("city", s("Oslo"))])
                ),
                ("item", Value::Array(vec![s("apple"), s("pear")])),
                (
                    "price",
                    obj(&[("@currency", s("EUR")), ("#text", s("12.50"))])
                ),
                ("note", Value::Null),
                ("comment", s("  spaced  ")),
            ]),
            rec(&[("@id", s("2")), ("item", s("fig"))]),
        ]
    );
}

#[test]
fn prefix_text_key_and_flatten_are_configurable() {
    let input = r#"<orders><order id="1"><customer><name>Ann</name><address><city>Oslo</city></address></customer><line><sku>a</sku></line><line><sku>b</sku></line>mixed <b>x</b> text</order></orders>"#;
    let options = XmlOptions {
        attribute_prefix: String::new(),
        text_key: "_text".into(),
        flatten: true,
        ..orders()
    };
    assert_eq!(
        decode(input, &options).unwrap(),
        [rec(&[
            ("id", s("1")),
            ("_text", s("mixed  text")),
            ("customer.name", s("Ann")),
            ("customer.address.city", s("Oslo")),
            (
                "line",
                Value::Array(vec![obj(&[("sku", s("a"))]), obj(&[("sku", s("b"))])])
            ),
            ("b", s("x")),
        ])]
    );
}

#[test]
fn records_are_only_found_at_the_record_path() {
    let input = "<export><orders><order><id>1</id></order><other><order><id>x</id></order></other></orders><order><id>y</id></order><orders><order><id>2</id></order></orders></export>";
    let options = XmlOptions {
        record_path: Some("export/orders/order".into()),
        ..XmlOptions::default()
    };
    let ids: Vec<Record> = decode(input, &options).unwrap();
    assert_eq!(ids, [rec(&[("id", s("1"))]), rec(&[("id", s("2"))])]);
    // No matching element: no records, no error.
    assert_eq!(decode(input, &orders()).unwrap(), []);
    // By default every child of the root is a record, whatever the names.
    assert_eq!(
        decode(
            "<export><order><id>1</id></order><row id=\"2\"/></export>",
            &XmlOptions::default()
        )
        .unwrap(),
        [rec(&[("id", s("1"))]), rec(&[("@id", s("2"))])]
    );
    // A single name: the root is the one record.
    let single = XmlOptions {
        record_path: Some("invoice".into()),
        ..XmlOptions::default()
    };
    assert_eq!(
        decode("<invoice no=\"7\"><total>3</total></invoice>", &single).unwrap(),
        [rec(&[("@no", s("7")), ("total", s("3"))])]
    );
}

#[test]
fn namespaces_are_stripped_or_kept() {
    let input = r#"<o:orders xmlns:o="urn:orders" xmlns="urn:default"><o:order o:id="1" xmlns:x="urn:x"><x:name>Ann</x:name></o:order></o:orders>"#;
    assert_eq!(
        decode(input, &orders()).unwrap(),
        [rec(&[("@id", s("1")), ("name", s("Ann"))])]
    );
    let keep = XmlOptions {
        record_path: Some("o:orders/o:order".into()),
        namespaces: Namespaces::Keep,
        ..XmlOptions::default()
    };
    assert_eq!(
        decode(input, &keep).unwrap(),
        [rec(&[
            ("@o:id", s("1")),
            ("@xmlns:x", s("urn:x")),
            ("x:name", s("Ann"))
        ])]
    );
    // Kept prefixes must be in the path.
    assert_eq!(
        decode(
            input,
            &XmlOptions {
                namespaces: Namespaces::Keep,
                ..orders()
            }
        )
        .unwrap(),
        []
    );
}

#[test]
fn cdata_entities_and_character_references_are_decoded() {
    let input = "<orders><order a=\"&lt;&amp;&quot;&#65;\"><t>&lt;b&gt; &amp; &apos;&quot; &#233;&#x263A;</t><c><![CDATA[<raw> & ]]]]><![CDATA[>]]></c><crlf>a\r\nb&#13;</crlf></order></orders>";
    assert_eq!(
        decode(input, &orders()).unwrap(),
        [rec(&[
            ("@a", s("<&\"A")),
            ("t", s("<b> & '\" é☺")),
            ("c", s("<raw> & ]]>")),
            ("crlf", s("a\nb\r")),
        ])]
    );
}

#[test]
fn encodings_are_detected() {
    let text = "<orders><order><name>Zoë Ærø</name></order></orders>";
    let expected = [rec(&[("name", s("Zoë Ærø"))])];
    // UTF-16LE with a byte-order mark.
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    assert_eq!(decode_bytes(&utf16, &orders()).unwrap(), expected);
    // UTF-16BE without one.
    let utf16be: Vec<u8> = format!("<?xml version=\"1.0\"?>{text}")
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    assert_eq!(decode_bytes(&utf16be, &orders()).unwrap(), expected);
    // UTF-16LE without a mark or a declaration: the root element's `<` tells.
    let utf16le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    assert_eq!(decode_bytes(&utf16le, &orders()).unwrap(), expected);
    // ISO-8859-1 named by the declaration.
    let mut latin1 = b"<?xml version=\"1.0\" encoding='ISO-8859-1'?>\n".to_vec();
    latin1.extend(text.chars().map(|c| u8::try_from(u32::from(c)).unwrap()));
    assert_eq!(decode_bytes(&latin1, &orders()).unwrap(), expected);
    // Shift_JIS.
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode("<?xml version=\"1.0\" encoding=\"Shift_JIS\"?><orders><order><name>東京</name></order></orders>");
    assert_eq!(
        decode_bytes(&sjis, &orders()).unwrap(),
        [rec(&[("name", s("東京"))])]
    );
    // A UTF-8 byte-order mark is skipped; positions count from after it.
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(text.as_bytes());
    assert_eq!(decode_bytes(&bom, &orders()).unwrap(), expected);
    // An encoding given by the caller wins over the declaration.
    let mut decoder = XmlDecoder::new(
        Box::new(Cursor::new(latin1.clone())),
        "t.xml",
        &orders(),
        Some(encoding_rs::WINDOWS_1252),
        DEFAULT_MAX_RECORD_BYTES,
    )
    .unwrap();
    let mut out = Vec::new();
    decoder.next_batch(&mut out, 10).unwrap();
    assert_eq!(out, expected);
    // Latin-1 bytes read as UTF-8: an error, not mojibake.
    let undeclared = latin1.split_off(latin1.iter().position(|b| *b == b'\n').unwrap() + 1);
    assert_eq!(
        decode_bytes(&undeclared, &orders())
            .unwrap_err()
            .to_string(),
        "t.xml: line 1, column 24, record 1: invalid XML: the text is not valid UTF-8. declare the file's encoding in its XML declaration, e.g. <?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>"
    );
    assert_eq!(
        error(
            "<?xml version=\"1.0\" encoding=\"klingon\"?><a/>",
            &orders()
        ),
        "t.xml: line 1: unknown encoding `klingon` in the XML declaration. use an encoding name from the WHATWG Encoding Standard, e.g. UTF-8, ISO-8859-1, windows-1252, Shift_JIS"
    );
}

#[test]
fn dtds_are_refused_so_entity_attacks_cannot_work() {
    let billion_laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz><lol>&lol3;</lol></lolz>"#;
    let refusal = "t.xml: line 2, column 1: a DTD (<!DOCTYPE …>) is not accepted: longshore never expands DTDs or external entities";
    assert_eq!(error(billion_laughs, &orders()), refusal);
    let xxe = r#"<?xml version="1.0"?>
<!DOCTYPE orders [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<orders><order><name>&xxe;</name></order></orders>"#;
    assert_eq!(error(xxe, &orders()), refusal);
    let external = "<!DOCTYPE orders SYSTEM \"http://example.com/orders.dtd\"><orders/>";
    assert_eq!(
        error(external, &orders()),
        "t.xml: line 1, column 1: a DTD (<!DOCTYPE …>) is not accepted: longshore never expands DTDs or external entities"
    );
    // Without a DTD, an entity reference can only be unknown.
    assert_eq!(
        error(
            "<orders>\n<order><name>a &xxe; b</name></order></orders>",
            &orders()
        ),
        "t.xml: line 2, column 16, record 1: invalid XML: unknown entity `&xxe;`: only &lt; &gt; &amp; &apos; &quot; and character references are accepted. longshore never reads DTDs, where other entities would be declared"
    );
    assert_eq!(
        error("<orders><order a=\"&xxe;\"/></orders>", &orders()),
        "t.xml: line 1, column 9, record 1: invalid XML: unknown entity `&xxe;`: only &lt; &gt; &amp; &apos; &quot; and character references are accepted. longshore never reads DTDs, where other entities would be declared"
    );
}

#[test]
fn malformed_input_is_located() {
    assert_eq!(
        error(
            "<orders>\n  <order><id>1</id></order>\n  <order>\n    <id>2</idx>\n  </order>\n</orders>",
            &orders()
        ),
        "t.xml: line 4, column 10, record 2: invalid XML: expected `</id>`, but `</idx>` was found"
    );
    assert_eq!(
        error(
            "<orders>\n<order><id>1</id></order>\n<order><id>2",
            &orders()
        ),
        "t.xml: line 3, column 13, record 2: invalid XML: the input ends inside element `id` of record 2: is the file truncated?"
    );
    assert_eq!(
        error("<orders><order><id>1</id></order>", &orders()),
        "t.xml: line 1, column 34: invalid XML: the input ends before the root element `orders` is closed: is the file truncated?"
    );
    assert_eq!(
        error("<orders>\n<order id=\"1></order></orders>", &orders()),
        "t.xml: line 2, column 1: invalid XML: attribute value not closed: `\"` not found before end of input"
    );
    assert_eq!(
        error("<orders/>\n  trailing junk", &orders()),
        "t.xml: line 2, column 3: invalid XML: text after the end of the root element `orders`: `trailing junk`"
    );
    assert_eq!(
        decode_bytes(
            b"<orders><order>\n<a b=\"\xC3\xA9\xFF\"/></order></orders>",
            &orders()
        )
        .unwrap_err()
        .to_string(),
        "t.xml: line 2, column 8, record 1: invalid XML: the text is not valid UTF-8. declare the file's encoding in its XML declaration, e.g. <?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>"
    );
    assert_eq!(
        error("<orders/><orders/>", &orders()),
        "t.xml: line 1, column 10: invalid XML: a second root element `orders` after `orders`: a document has one"
    );
    assert_eq!(
        error(
            "<orders><order>é</order>\n<order>ü<x>1</y></order></orders>",
            &orders()
        ),
        "t.xml: line 2, column 13, record 2: invalid XML: expected `</x>`, but `</y>` was found"
    );
}

#[test]
fn nesting_inside_a_record_is_limited() {
    let deep = |levels: usize| {
        format!(
            "<orders><order>{}{}</order></orders>",
            "<a>".repeat(levels),
            "</a>".repeat(levels)
        )
    };
    assert_eq!(decode(&deep(255), &orders()).unwrap().len(), 1);
    assert_eq!(
        error(&deep(256), &orders()),
        "t.xml: line 1, column 781, record 1: invalid XML: elements nested more than 256 levels deep in a record"
    );
    // Outside records nothing is built: depth costs nothing.
    let skipped = format!(
        "<orders>{}{}</orders>",
        "<x>".repeat(10_000),
        "</x>".repeat(10_000)
    );
    assert_eq!(decode(&skipped, &orders()).unwrap(), []);
}

#[test]
fn input_that_is_not_xml_is_refused() {
    assert_eq!(
        error("id,name\n1,ant\n", &orders()),
        "t.xml: line 1, column 1: not an XML document: it starts with `id,name`, not with an element"
    );
    assert_eq!(
        error(
            "\n  [{\"id\": 1, \"name\": \"a long name here\"}]",
            &orders()
        ),
        "t.xml: line 2, column 3: not an XML document: it starts with `[{\"id\": 1, \"name\": \"…`, not with an element"
    );
    assert_eq!(
        error("", &orders()),
        "t.xml: line 1, column 1: not an XML document: there is no element in it"
    );
    assert_eq!(
        error("<?xml version=\"1.0\"?>\n<!-- nothing -->\n", &orders()),
        "t.xml: line 3, column 1: not an XML document: there is no element in it"
    );
}

const HINT: &str = "raise the source's `max_record_bytes` if such records are expected";

/// The records and the error of `input` read with a `max_record_bytes` of `limit`, the same
/// whatever the chunk and read sizes.
fn limited(input: &[u8], options: &XmlOptions, limit: u64) -> (Vec<Record>, String) {
    let whole = limited_outcome(input, options, usize::MAX, usize::MAX, limit);
    for (chunk_bytes, read_bytes) in [(1, 1), (7, 3), (64, 1000)] {
        assert_eq!(
            limited_outcome(input, options, chunk_bytes, read_bytes, limit),
            whole,
            "chunks of {chunk_bytes}, reads of {read_bytes}"
        );
    }
    whole
}

#[test]
fn a_record_larger_than_the_limit_fails_with_its_line_after_those_before() {
    let note = "x".repeat(100);
    let input = format!(
        "<orders>\n<order><id>1</id></order>\n  <order><note>{note}</note></order>\n<order/></orders>"
    );
    let (records, error) = limited(input.as_bytes(), &orders(), 30);
    assert_eq!(records, [rec(&[("id", s("1"))])]);
    assert_eq!(
        error,
        format!(
            "t.xml: line 3, column 3, record 2: a record is larger than `max_record_bytes` = 30 (30 bytes). {HINT}"
        )
    );
    // At the limit, it passes: the limit counts the record's element, start and end tags.
    let fits = "<orders><order><id>1</id></order></orders>";
    assert_eq!(limited(fits.as_bytes(), &orders(), 25).1, "");
    assert_eq!(
        limited(fits.as_bytes(), &orders(), 24).1,
        format!(
            "t.xml: line 1, column 9, record 1: a record is larger than `max_record_bytes` = 24 (24 bytes). {HINT}"
        )
    );
    // A record cut short by the end of the input counts what there is of it.
    let (_, error) = limited(b"<orders><order><note>xxxxxxxxxxxxxxxxxxxx", &orders(), 10);
    assert_eq!(
        error,
        format!(
            "t.xml: line 1, column 9, record 1: a record is larger than `max_record_bytes` = 10 (10 bytes). {HINT}"
        )
    );
}

#[test]
fn a_root_element_that_is_the_record_is_limited_too() {
    let invoice = XmlOptions {
        record_path: Some("invoice".into()),
        ..XmlOptions::default()
    };
    let input = format!(
        "<?xml version=\"1.0\"?>\n<invoice><id>7</id><note>{}</note></invoice>\n",
        "y".repeat(1000)
    );
    let (records, error) = limited(input.as_bytes(), &invoice, 500);
    assert!(records.is_empty());
    assert_eq!(
        error,
        format!(
            "t.xml: line 2, column 1, record 1: a record is larger than `max_record_bytes` = 500 (500 bytes). {HINT}"
        )
    );
    assert_eq!(limited(input.as_bytes(), &invoice, 2000).0.len(), 1);
}

#[test]
fn a_text_node_outside_the_records_larger_than_the_limit_fails() {
    let input = format!(
        "<orders>\n<order/>\n<meta>{}</meta><order/></orders>",
        "z".repeat(100)
    );
    let (records, error) = limited(input.as_bytes(), &orders(), 50);
    assert_eq!(records, [Record::new()]);
    assert_eq!(
        error,
        "t.xml: line 3, column 7: text or markup outside the records is larger than `max_record_bytes` = 50 (50 bytes). raise the source's `max_record_bytes` if such documents are expected"
    );
    // Text, comments and the like before the root element are held together.
    let input = format!("<!-- {} -->\n<orders/>", "c".repeat(60));
    assert_eq!(
        limited(input.as_bytes(), &orders(), 50).1,
        "t.xml: line 1, column 1: text or markup outside the records is larger than `max_record_bytes` = 50 (50 bytes). raise the source's `max_record_bytes` if such documents are expected"
    );
}

#[test]
fn zeros_are_refused_as_not_xml_once_past_the_limit() {
    // A gzipped stream of zeros, read as XML: text before any element. The parser is given
    // the start of it, and says what it is.
    let zeros = vec![0u8; 1 << 20];
    let (records, error) = limited(&zeros, &orders(), 1000);
    assert!(records.is_empty());
    assert_eq!(
        error,
        "t.xml: line 1, column 1: not an XML document: it starts with `\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0…`, not with an element"
    );
    let mut after_a_declaration = b"<?xml version=\"1.0\"?>\n".to_vec();
    after_a_declaration.extend(&zeros);
    assert_eq!(
        limited(&after_a_declaration, &orders(), 1000).1,
        "t.xml: line 2, column 1: not an XML document: it starts with `\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0\\0…`, not with an element"
    );
    // Text after the root element, likewise.
    let mut after_the_root = b"<orders><order/></orders>".to_vec();
    after_the_root.extend(&zeros);
    let (records, error) = limited(&after_the_root, &orders(), 1000);
    assert_eq!(records.len(), 1);
    assert!(
        error.starts_with(
            "t.xml: line 1, column 26: invalid XML: text after the end of the root element `orders`: `\\0\\0"
        ),
        "{error}"
    );
}

#[test]
fn records_before_an_error_come_first() {
    let mut input = String::from("<orders>");
    for i in 0..5 {
        input.push_str(&format!("<order><id>{i}</id></order>"));
    }
    input.push_str("<order><id>5</oops></order></orders>");
    let mut decoder = XmlDecoder::new(
        Box::new(Cursor::new(input)),
        "t.xml",
        &orders(),
        None,
        DEFAULT_MAX_RECORD_BYTES,
    )
    .unwrap();
    let mut out = Vec::new();
    assert!(decoder.next_batch(&mut out, 10).unwrap());
    assert_eq!(out.len(), 5);
    let error = decoder.next_batch(&mut out, 10).unwrap_err();
    assert!(error.to_string().contains("record 6"), "{error}");
    assert!(!decoder.next_batch(&mut out, 10).unwrap());
}

#[test]
fn writes_attributes_nesting_arrays_and_nulls() {
    let records = [
        rec(&[
            ("@id", s("1")),
            (
                "customer",
                obj(&[("@vip", s("y")), ("name", s("Ann & <Bob>"))]),
            ),
            ("item", Value::Array(vec![s("a"), s("b")])),
            (
                "price",
                obj(&[("@currency", s("EUR")), ("#text", s("12.50"))]),
            ),
            ("note", Value::Null),
            ("qty", Value::Integer(3)),
            ("ok", Value::Bool(true)),
            ("@gone", Value::Null),
        ]),
        rec(&[("@id", s("\"2\"\t\n")), ("text", s("line\r\nnext"))]),
        rec(&[]),
    ];
    assert_eq!(
        encode(&records, &orders()).unwrap(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<orders>\n\
         <order id=\"1\"><customer vip=\"y\"><name>Ann &amp; &lt;Bob&gt;</name></customer><item>a</item><item>b</item><price currency=\"EUR\">12.50</price><note/><qty>3</qty><ok>true</ok></order>\n\
         <order id=\"&quot;2&quot;&#9;&#10;\"><text>line&#13;\nnext</text></order>\n\
         <order/>\n\
         </orders>\n"
    );
    let pretty = XmlOptions {
        pretty: true,
        attributes: vec!["id".into()],
        record_path: Some("export/orders/order".into()),
        ..XmlOptions::default()
    };
    let records = [rec(&[
        ("id", s("1")),
        ("customer", obj(&[("name", s("Ann"))])),
        ("item", Value::Array(vec![s("a"), Value::Null])),
        (
            "price",
            obj(&[("@currency", s("EUR")), ("#text", s("12.50"))]),
        ),
    ])];
    assert_eq!(
        encode(&records, &pretty).unwrap(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<export>\n  <orders>\n    <order id=\"1\">\n      <customer>\n        <name>Ann</name>\n      </customer>\n      <item>a</item>\n      <item/>\n      <price currency=\"EUR\">12.50</price>\n    </order>\n  </orders>\n</export>\n"
    );
    assert_eq!(
        encode(&[], &orders()).unwrap(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<orders>\n</orders>\n"
    );
}

#[test]
fn fields_xml_cannot_hold_are_errors_naming_record_and_field() {
    let first = rec(&[("id", s("1"))]);
    let cases = [
        (
            rec(&[("order id", s("1"))]),
            "o.xml: record 2, field `order id`: `order id` is not a valid XML element name. rename the field (a `rename` transform): XML names start with a letter or `_` and hold letters, digits, `-`, `_` and `.`",
        ),
        (
            rec(&[("@1st", s("1"))]),
            "o.xml: record 2, field `@1st`: `1st` is not a valid XML attribute name. rename the field (a `rename` transform): XML names start with a letter or `_` and hold letters, digits, `-`, `_` and `.`",
        ),
        (
            rec(&[("bell", s("ding\u{7}"))]),
            "o.xml: record 2, field `bell`: the value holds the control character U+0007, which XML 1.0 cannot represent",
        ),
        (
            rec(&[("grid", Value::Array(vec![Value::Array(vec![s("1")])]))]),
            "o.xml: record 2, field `grid`: an array inside an array has no XML form. wrap the inner arrays in objects",
        ),
        (
            rec(&[("@tags", Value::Array(vec![s("1")]))]),
            "o.xml: record 2, field `@tags`: an attribute holds one value, not an array or an object",
        ),
    ];
    for (bad, expected) in cases {
        let error = encode(&[first.clone(), bad], &orders()).unwrap_err();
        assert_eq!(error.to_string(), expected);
    }
    let single = XmlOptions {
        record_path: Some("invoice".into()),
        ..XmlOptions::default()
    };
    assert_eq!(
        encode(std::slice::from_ref(&first), &single).unwrap(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<invoice><id>1</id></invoice>\n"
    );
    assert_eq!(
        encode(&[first.clone(), first], &single)
            .unwrap_err()
            .to_string(),
        "o.xml: record 2: `record_path = \"invoice\"` makes the record the root element, and a document has one: this is a second record. name a root element around the records, e.g. \"records/record\""
    );
}

#[test]
fn flattened_names_are_nested_when_written() {
    let options = XmlOptions {
        flatten: true,
        ..orders()
    };
    let records = [rec(&[
        ("@id", s("1")),
        ("customer.@vip", s("y")),
        ("customer.name", s("Ann")),
        ("customer.address.city", s("Oslo")),
        ("total", s("3")),
    ])];
    let xml = encode(&records, &options).unwrap();
    assert_eq!(
        xml,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<orders>\n<order id=\"1\"><customer vip=\"y\"><name>Ann</name><address><city>Oslo</city></address></customer><total>3</total></order>\n</orders>\n"
    );
    assert_eq!(decode(&xml, &options).unwrap(), records);
    let clash = rec(&[("customer", s("x")), ("customer.name", s("Ann"))]);
    assert_eq!(
        encode(&[clash], &options).unwrap_err().to_string(),
        "o.xml: record 1, field `customer.name`: cannot nest this field: a field with a shorter name is not an object"
    );
}

#[test]
fn options_are_checked() {
    let bad = XmlOptions {
        record_path: Some("orders/1order".into()),
        text_key: String::new(),
        attributes: vec!["a b".into()],
        ..XmlOptions::default()
    };
    assert_eq!(
        bad.problems(),
        [
            (
                "record_path",
                "`1order` in `orders/1order` is not an XML element name".to_string()
            ),
            ("text_key", "`text_key` must not be empty".to_string()),
            (
                "attributes",
                "`a b` is not an XML attribute name".to_string()
            ),
        ]
    );
    let empty = XmlOptions {
        record_path: Some(String::new()),
        ..XmlOptions::default()
    };
    assert_eq!(empty.problems().len(), 1);
    assert!(XmlOptions::default().problems().is_empty());
    assert!(is_xml_name("ns:order-line_2.x") && is_xml_name("ÆØ") && !is_xml_name("-a"));
}

/// Text values, as XML has them: non-empty (an empty element is null) and free of the control
/// characters XML 1.0 cannot represent.
fn text_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        "[a-zA-Z0-9 &<>\"'\\]\\r\\n\\t\u{e9}\u{263a}]{1,12}".prop_map(|t| Value::String(t.into())),
    ]
}

fn field_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_.-]{0,6}"
}

/// Records the mapping can carry: attributes (`@`), text fields, objects, arrays of two or more.
fn xml_record(depth: u32) -> BoxedStrategy<Record> {
    let value = if depth == 0 {
        text_value().boxed()
    } else {
        prop_oneof![
            3 => text_value(),
            1 => xml_record(depth - 1)
                .prop_filter("an empty object is an empty element: null", |r| !r.is_empty())
                .prop_map(Value::Object),
            1 => proptest::collection::vec(text_value(), 2..4).prop_map(Value::Array),
        ]
        .boxed()
    };
    let attributes = proptest::collection::vec((field_name(), "[a-z &<>\"'\\t\\n]{0,8}"), 0..3);
    let children = proptest::collection::vec((field_name(), value), 0..5);
    (attributes, children)
        .prop_map(|(attributes, children)| {
            let mut record = Record::new();
            for (name, value) in attributes {
                let name = FieldName::from(format!("@{name}"));
                if record.get(&name).is_none() {
                    record.push(name, Value::String(value.into()));
                }
            }
            for (name, value) in children {
                if record.get(&name).is_none() {
                    record.push(FieldName::from(name), value);
                }
            }
            record
        })
        .boxed()
}

proptest! {
    #[test]
    fn decoding_what_was_encoded_gives_back_the_records(
        records in proptest::collection::vec(xml_record(2), 0..4),
        pretty in any::<bool>(),
    ) {
        let options = XmlOptions { pretty, ..orders() };
        let xml = encode(&records, &options).unwrap();
        prop_assert_eq!(decode(&xml, &options).unwrap(), records, "{}", xml);
    }
}

/// Everything a decoder gives: its records, and the error that ends them.
fn outcome(input: &[u8], options: &XmlOptions, chunk_bytes: usize) -> (Vec<Record>, String) {
    limited_outcome(
        input,
        options,
        chunk_bytes,
        usize::MAX,
        DEFAULT_MAX_RECORD_BYTES,
    )
}

/// Everything a decoder gives, reading at most `read_bytes` at a time with a record limit.
fn limited_outcome(
    input: &[u8],
    options: &XmlOptions,
    chunk_bytes: usize,
    read_bytes: usize,
    max_record_bytes: u64,
) -> (Vec<Record>, String) {
    let input = Box::new(ShortReads {
        input: Cursor::new(input.to_vec()),
        read_bytes,
    });
    let decoder =
        XmlDecoder::with_chunk_bytes(input, "t.xml", options, None, chunk_bytes, max_record_bytes);
    let mut decoder = match decoder {
        Ok(decoder) => decoder,
        Err(e) => return (Vec::new(), e.to_string()),
    };
    let mut records = Vec::new();
    loop {
        match decoder.next_batch(&mut records, 3) {
            Ok(true) => {}
            Ok(false) => return (records, String::new()),
            Err(e) => return (records, e.to_string()),
        }
    }
}

/// A reader that gives at most `read_bytes` at a time, as pipes and decompressors do.
struct ShortReads {
    input: Cursor<Vec<u8>>,
    read_bytes: usize,
}

impl std::io::Read for ShortReads {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let length = buf.len().min(self.read_bytes);
        self.input.read(&mut buf[..length])
    }
}

/// The chunks a splitter cuts `input` into, read at most `read_bytes` at a time: each chunk's
/// bytes, prefix length, line, column, records before it and whether it is the last.
fn chunks(
    input: &[u8],
    options: &XmlOptions,
    chunk_bytes: usize,
    read_bytes: usize,
) -> Vec<(Vec<u8>, usize, u64, u64, u64, bool)> {
    let input = Box::new(ShortReads {
        input: Cursor::new(input.to_vec()),
        read_bytes,
    });
    let mut splitter = split::Splitter::new(
        input,
        "t.xml",
        options,
        chunk_bytes,
        DEFAULT_MAX_RECORD_BYTES,
    );
    let mut chunks = Vec::new();
    while let Some(chunk) = splitter.next_chunk().unwrap() {
        chunks.push((
            chunk.bytes,
            chunk.prefix_length,
            chunk.line,
            chunk.column,
            chunk.records_before,
            chunk.last,
        ));
    }
    chunks
}

/// Pieces of markup, well-formed or not, that documents are made of: what the splitter must
/// step over exactly as the parser does.
const PIECES: &[&str] = &[
    "<orders>",
    "</orders>",
    "<order id=\"1\">",
    "<order a='>' b=\"'\"/>",
    "</order>",
    "<ns:order xmlns:ns=\"u\">",
    "</ns:order>",
    "<x>",
    "</x>",
    "<x/>",
    "<order>",
    "text",
    " \n",
    "\n",
    "&amp;",
    "&bogus;",
    "&#233;",
    "<!-- c > <order> -->",
    "<![CDATA[<order>]]>",
    "<?pi <order> ?>",
    "<?xml version=\"1.0\"?>",
    "<!DOCTYPE d [<!ENTITY e '>'>]>",
    "<",
    ">",
    "\"",
    "/>",
    "é",
    "<order\n  id='2'\n>",
    "</order >",
    "<meta><order/></meta>",
    "<!-->",
    "<!--",
    "-->",
    "<![CDATA[",
    "]]>",
    "<?",
    "?>",
    "<!",
    "'",
    "=",
    "<a b=\"x>\">",
    "\r\n",
    "<order\t/>",
    "<!DOCTYPE",
];

/// A well-formed document: records among comments, other elements, text and CDATA.
fn document() -> impl Strategy<Value = String> {
    let record = prop_oneof![
        Just("<order/>".to_string()),
        "[a-z <>&é]{0,6}".prop_map(|t| format!(
            "<order id=\"{}\"><item>{}</item><item/></order>",
            t.len(),
            quick_xml::escape::escape(&t)
        )),
        "[a-z]{1,5}".prop_map(|t| format!("<order><![CDATA[{t}<x>]]><order>{t}</order></order>")),
    ];
    let between = prop_oneof![
        Just("\n  ".to_string()),
        Just("<!-- </orders> -->".to_string()),
        Just("<?pi > ?>".to_string()),
        Just("<skip a='<'><order>not a record</order></skip>".to_string()),
        Just("<![CDATA[</orders>]]>".to_string()),
    ];
    proptest::collection::vec((record, between), 0..12).prop_map(|parts| {
        let body: String = parts.into_iter().map(|(r, b)| r + &b).collect();
        format!("<?xml version=\"1.0\"?>\n<orders>\n{body}</orders>\n")
    })
}

proptest! {
    #[test]
    fn documents_cut_into_chunks_decode_as_one_whole(
        document in document(),
        chunk_bytes in 1usize..64,
        any_root in any::<bool>(),
    ) {
        let options = if any_root { XmlOptions::default() } else { orders() };
        let whole = outcome(document.as_bytes(), &options, usize::MAX);
        prop_assert_eq!(&whole.1, "");
        prop_assert_eq!(outcome(document.as_bytes(), &options, chunk_bytes), whole);
    }

    #[test]
    fn any_markup_cut_into_chunks_gives_the_same_records_and_error(
        pieces in proptest::collection::vec(proptest::sample::select(PIECES), 0..24),
        chunk_bytes in 1usize..32,
        any_root in any::<bool>(),
    ) {
        let options = if any_root { XmlOptions::default() } else { orders() };
        let input = pieces.concat();
        prop_assert_eq!(
            outcome(input.as_bytes(), &options, chunk_bytes),
            outcome(input.as_bytes(), &options, usize::MAX),
            "{}", input
        );
    }

    #[test]
    fn any_markup_under_a_limit_gives_the_same_outcome_whatever_the_sizes(
        pieces in proptest::collection::vec(proptest::sample::select(PIECES), 0..24),
        chunk_bytes in 1usize..32,
        read_bytes in 1usize..8,
        limit in 1u64..48,
        any_root in any::<bool>(),
    ) {
        // What grows past the limit is refused wherever the reads and the chunks end.
        let options = if any_root { XmlOptions::default() } else { orders() };
        let input = pieces.concat();
        prop_assert_eq!(
            limited_outcome(input.as_bytes(), &options, chunk_bytes, read_bytes, limit),
            limited_outcome(input.as_bytes(), &options, usize::MAX, usize::MAX, limit),
            "{}", input
        );
    }

    #[test]
    fn any_markup_read_in_any_sizes_is_cut_in_the_same_places(
        pieces in proptest::collection::vec(proptest::sample::select(PIECES), 0..24),
        chunk_bytes in 1usize..32,
        read_bytes in 1usize..8,
        any_root in any::<bool>(),
    ) {
        // Pieces that go on over several reads are scanned on from where the last read left
        // off, and must end exactly where a scan of the whole piece ends them.
        let options = if any_root { XmlOptions::default() } else { orders() };
        let input = pieces.concat();
        prop_assert_eq!(
            chunks(input.as_bytes(), &options, chunk_bytes, read_bytes),
            chunks(input.as_bytes(), &options, chunk_bytes, usize::MAX),
            "{}", input
        );
    }
}
