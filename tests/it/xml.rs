//! The `xml` format end to end: `convert` both ways, a pipeline with a `record_path`, and
//! hostile input refused with nothing published.

use crate::support::{Sandbox, pipeline};

const ORDERS_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- exported 2024-08-01 -->
<orders count="3">
  <order id="SO-1001" status="completed">
    <customer>Ann &amp; Bob</customer>
    <total currency="EUR">149.90</total>
    <note/>
  </order>
  <order id="SO-1002" status="pending">
    <customer><![CDATA[Zoë <Köln>]]></customer>
    <total currency="USD">75.50</total>
    <note>ask for "Jan", dock 4</note>
  </order>
  <order id="SO-1003" status="completed">
    <customer>東京 Ltd</customer>
    <total currency="JPY">18400</total>
    <note></note>
  </order>
</orders>
"#;

#[test]
fn convert_reads_the_children_of_the_root_as_records() {
    let sandbox = Sandbox::new();
    sandbox.write("orders.xml", ORDERS_XML);
    sandbox
        .run(["convert", "orders.xml", "orders.csv"])
        .assert_success();
    // Nested values are JSON text in a CSV cell, as from any format.
    assert_eq!(
        sandbox.read("orders.csv"),
        "@id,@status,customer,total,note\n\
         SO-1001,completed,Ann & Bob,\"{\"\"@currency\"\":\"\"EUR\"\",\"\"#text\"\":\"\"149.90\"\"}\",\n\
         SO-1002,pending,Zoë <Köln>,\"{\"\"@currency\"\":\"\"USD\"\",\"\"#text\"\":\"\"75.50\"\"}\",\"ask for \"\"Jan\"\", dock 4\"\n\
         SO-1003,completed,東京 Ltd,\"{\"\"@currency\"\":\"\"JPY\"\",\"\"#text\"\":\"\"18400\"\"}\",\n"
    );
}

#[test]
fn flattened_xml_converts_to_csv() {
    let sandbox = Sandbox::new();
    sandbox.write("orders.xml", ORDERS_XML);
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"orders.xml\"\nformat = { type = \"xml\", record_path = \"orders/order\", flatten = true }",
            &["path = \"out/orders.csv\""],
        ),
    );
    sandbox.run(["run", "p.toml"]).assert_success();
    assert_eq!(
        sandbox.read("out/orders.csv"),
        "@id,@status,customer,total.@currency,total.#text,note\n\
         SO-1001,completed,Ann & Bob,EUR,149.90,\n\
         SO-1002,pending,Zoë <Köln>,USD,75.50,\"ask for \"\"Jan\"\", dock 4\"\n\
         SO-1003,completed,東京 Ltd,JPY,18400,\n"
    );
    sandbox.assert_no_temp_files();
}

#[test]
fn convert_reads_the_default_record_path_and_infers_xml_from_the_extension() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "in.xml",
        "<records><record><id>1</id><tags><tag>a</tag><tag>b</tag></tags></record><record><id>2</id></record></records>",
    );
    sandbox
        .run(["convert", "in.xml", "out.ndjson"])
        .assert_success();
    assert_eq!(
        sandbox.read("out.ndjson"),
        "{\"id\":\"1\",\"tags\":{\"tag\":[\"a\",\"b\"]}}\n{\"id\":\"2\"}\n"
    );
}

#[test]
fn csv_converts_to_xml_and_back() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "a.csv",
        "id,name,note\n1,Ann & Bob,\n2,\"Zoë \"\"Z\"\" <z@example.com>\",late\n",
    );
    sandbox.run(["convert", "a.csv", "b.xml"]).assert_success();
    assert_eq!(
        sandbox.read("b.xml"),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<records>\n\
         <record><id>1</id><name>Ann &amp; Bob</name><note/></record>\n\
         <record><id>2</id><name>Zoë \"Z\" &lt;z@example.com&gt;</name><note>late</note></record>\n\
         </records>\n"
    );
    sandbox.run(["convert", "b.xml", "c.csv"]).assert_success();
    assert_eq!(sandbox.read("c.csv"), sandbox.read("a.csv"));
}

#[test]
fn a_csv_header_that_is_no_xml_name_is_an_error_and_nothing_is_written() {
    let sandbox = Sandbox::new();
    sandbox.write("a.csv", "id,order date\n1,2024-08-01\n");
    sandbox
        .run(["convert", "a.csv", "b.xml"])
        .assert_code(1)
        .assert_stderr(
            "error: pipeline `convert`: output failed\n  caused by: b.xml: record 1, field `order date`: `order date` is not a valid XML element name. rename the field (a `rename` transform): XML names start with a letter or `_` and hold letters, digits, `-`, `_` and `.`\n",
        );
    assert_eq!(sandbox.files(""), ["a.csv"]);
}

#[test]
fn external_entities_are_refused_and_nothing_is_published() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "evil.xml",
        "<?xml version=\"1.0\"?>\n<!DOCTYPE orders [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n<orders><order><name>&xxe;</name></order></orders>\n",
    );
    sandbox
        .run(["convert", "evil.xml", "out.csv"])
        .assert_code(1)
        .assert_stderr(
            "error: pipeline `convert`: input failed\n  caused by: evil.xml: line 2, column 1: a DTD (<!DOCTYPE …>) is not accepted: longshore never expands DTDs or external entities\n",
        );
    assert_eq!(sandbox.files(""), ["evil.xml"]);
}

#[test]
fn a_file_that_is_not_xml_is_refused() {
    let sandbox = Sandbox::new();
    sandbox.write("orders.xml", "id,name\n1,ant\n");
    sandbox
        .run(["convert", "orders.xml", "out.csv"])
        .assert_code(1)
        .assert_stderr(
            "error: pipeline `convert`: input failed\n  caused by: orders.xml: line 1, column 1: not an XML document: it starts with `id,name`, not with an element\n",
        );
    assert_eq!(sandbox.files(""), ["orders.xml"]);
}

#[test]
fn a_pipeline_reads_and_writes_xml_with_a_record_path() {
    let sandbox = Sandbox::new();
    sandbox.write("in/orders.xml", ORDERS_XML);
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in/*.xml\"\nformat = { type = \"xml\", record_path = \"orders/order\" }",
            &[
                "path = \"out/{source_stem}.xml\"\nformat = { type = \"xml\", record_path = \"export/orders/order\", pretty = true }",
                "path = \"out/{source_stem}.ndjson\"",
            ],
        ),
    );
    sandbox.run(["run", "p.toml"]).assert_success();
    assert_eq!(
        sandbox.read("out/orders.ndjson"),
        "{\"@id\":\"SO-1001\",\"@status\":\"completed\",\"customer\":\"Ann & Bob\",\"total\":{\"@currency\":\"EUR\",\"#text\":\"149.90\"},\"note\":null}\n\
         {\"@id\":\"SO-1002\",\"@status\":\"pending\",\"customer\":\"Zoë <Köln>\",\"total\":{\"@currency\":\"USD\",\"#text\":\"75.50\"},\"note\":\"ask for \\\"Jan\\\", dock 4\"}\n\
         {\"@id\":\"SO-1003\",\"@status\":\"completed\",\"customer\":\"東京 Ltd\",\"total\":{\"@currency\":\"JPY\",\"#text\":\"18400\"},\"note\":null}\n"
    );
    assert_eq!(
        sandbox.read("out/orders.xml"),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<export>
  <orders>
    <order id="SO-1001" status="completed">
      <customer>Ann &amp; Bob</customer>
      <total currency="EUR">149.90</total>
      <note/>
    </order>
    <order id="SO-1002" status="pending">
      <customer>Zoë &lt;Köln&gt;</customer>
      <total currency="USD">75.50</total>
      <note>ask for "Jan", dock 4</note>
    </order>
    <order id="SO-1003" status="completed">
      <customer>東京 Ltd</customer>
      <total currency="JPY">18400</total>
      <note/>
    </order>
  </orders>
</export>
"#
    );
}

#[test]
fn validate_reports_bad_xml_options() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in.xml\"\nformat = { type = \"xml\", record_path = \"orders/2nd\" }",
            &["path = \"out.csv\""],
        ),
    );
    let outcome = sandbox.run(["validate", "p.toml"]);
    outcome.assert_code(2);
    assert!(
        outcome
            .stderr
            .contains("`2nd` in `orders/2nd` is not an XML element name"),
        "{}",
        outcome.stderr
    );
}
