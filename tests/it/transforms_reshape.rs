//! The reshaping transforms in real pipelines: nested JSON to flat CSV, orders to order lines,
//! lookups from a reference file, and what a lookup miss does with and without `[rejects]`.

use crate::support::{Sandbox, pipeline};

#[test]
fn nested_json_becomes_a_flat_csv_with_glob_selected_columns() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"in/customers.json\"\nformat = { type = \"json\", records = \"/customers\" }",
            &["path = \"out/customers.csv\""],
        ) + r#"
[[transforms]]
type = "flatten"

[[transforms]]
type = "select"
fields = ["id", "customer.*", "total"]
"#,
    );
    sandbox.write(
        "in/customers.json",
        r#"{"customers": [
  {"id": 1, "internal": "x", "customer": {"name": "Zoë", "address": {"city": "Köln", "zip": "50667"}, "tags": ["vip", "b2b"]}, "total": 12345678901234567890.10},
  {"id": 2, "customer": {"name": "Li", "address": {"city": null, "zip": "8000"}, "tags": []}, "total": null}
]}"#,
    );
    sandbox.run(["-q", "run", "p.toml"]).assert_success();
    assert_eq!(
        sandbox.read("out/customers.csv"),
        concat!(
            "id,customer.name,customer.address.city,customer.address.zip,customer.tags,total\n",
            "1,Zoë,Köln,50667,\"[\"\"vip\"\",\"\"b2b\"\"]\",12345678901234567890.10\n",
            "2,Li,,8000,[],\n",
        )
    );
}

#[test]
fn orders_become_order_lines_stamped_and_reordered() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        format!("name = \"lines\"\n{}", pipeline(
            "path = \"in/orders.ndjson\"",
            &["path = \"out/lines.ndjson\""],
        )) + r#"
[[transforms]]
type = "unnest"
field = "lines"
prefix = "line."
keep = ["order_id", "customer"]
empty = "drop"

[[transforms]]
type = "set"
fields = { line_ref = "{order_id}-{line.sku}", batch_file = "{source}", pipeline = "{pipeline}", priority = 3, copied_qty = "{line.qty}" }

[[transforms]]
type = "reorder"
fields = ["line_ref", "order_id"]
"#,
    );
    sandbox.write(
        "in/orders.ndjson",
        concat!(
            r#"{"order_id":"SO-1","customer":"Zoë","lines":[{"sku":"A","qty":2},{"sku":"ß","qty":1}],"note":"x"}"#,
            "\n",
            r#"{"order_id":"SO-2","customer":"Li","lines":[]}"#,
            "\n",
            r#"{"order_id":"SO-3","customer":"Ann","lines":[{"sku":"C","qty":10}]}"#,
            "\n",
        ),
    );
    sandbox.run(["-q", "run", "p.toml"]).assert_success();
    assert_eq!(
        sandbox.read("out/lines.ndjson"),
        concat!(
            r#"{"line_ref":"SO-1-A","order_id":"SO-1","customer":"Zoë","line.sku":"A","line.qty":2,"batch_file":"in/orders.ndjson","pipeline":"lines","priority":3,"copied_qty":2}"#,
            "\n",
            r#"{"line_ref":"SO-1-ß","order_id":"SO-1","customer":"Zoë","line.sku":"ß","line.qty":1,"batch_file":"in/orders.ndjson","pipeline":"lines","priority":3,"copied_qty":1}"#,
            "\n",
            r#"{"line_ref":"SO-3-C","order_id":"SO-3","customer":"Ann","line.sku":"C","line.qty":10,"batch_file":"in/orders.ndjson","pipeline":"lines","priority":3,"copied_qty":10}"#,
            "\n",
        )
    );
}

/// Orders whose country codes and status codes are looked up: the countries in a reference
/// CSV beside the pipeline, the status codes in the pipeline file.
fn lookup_pipeline(extra: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write(
        "pipelines/p.toml",
        pipeline("path = \"../in/orders.csv\"", &["path = \"../out/orders.csv\""])
            + r#"
[[transforms]]
type = "map"
fields = { country = { file = "ref/countries.csv", key = "code", value = "name", on_missing = "reject" }, status = { values = { "1" = "unshipped", "2" = "shipped" }, default = "unknown" } }
"#
            + extra,
    );
    sandbox.write(
        "pipelines/ref/countries.csv",
        "code,name\nDE,Deutschland\nCI,Côte d'Ivoire\nJP,日本\n",
    );
    sandbox.write(
        "in/orders.csv",
        "id,country,status\n1,DE,1\n2,XX,2\n3,JP,9\n4,,1\n5,CI,2\n",
    );
    sandbox
}

#[test]
fn a_lookup_from_a_reference_file_sets_misses_aside_with_their_record_number() {
    let sandbox = lookup_pipeline("\n[rejects]\npath = \"../rejects.ndjson\"\n");
    sandbox
        .run(["-q", "run", "pipelines/p.toml"])
        .assert_success();
    assert_eq!(
        sandbox.read("out/orders.csv"),
        "id,country,status\n1,Deutschland,unshipped\n3,日本,unknown\n5,Côte d'Ivoire,shipped\n"
    );
    assert_eq!(
        sandbox.read("rejects.ndjson"),
        concat!(
            r#"{"file":"in/orders.csv","line":null,"column":null,"record":2,"field":"country","reason":"`country`: `XX` is not a key of ref/countries.csv","raw":"{\"id\":\"2\",\"country\":\"XX\",\"status\":\"2\"}"}"#,
            "\n",
            r#"{"file":"in/orders.csv","line":null,"column":null,"record":4,"field":"country","reason":"`country`: null is not a key of ref/countries.csv","raw":"{\"id\":\"4\",\"country\":null,\"status\":\"1\"}"}"#,
            "\n",
        )
    );
}

#[test]
fn without_rejects_a_lookup_miss_fails_the_run_naming_file_and_record() {
    let sandbox = lookup_pipeline("");
    sandbox
        .run(["run", "pipelines/p.toml"])
        .assert_code(1)
        .assert_stderr(concat!(
            "error: pipeline `p`: transform 1 (map) failed\n",
            "  caused by: in/orders.csv: record 2: `country`: `XX` is not a key of ref/countries.csv; a `[rejects]` table sets such records aside and lets the run go on\n"
        ));
    sandbox.assert_not_published("out/orders.csv");
}

#[test]
fn a_duplicate_key_in_the_lookup_file_fails_before_reading_input() {
    let sandbox = lookup_pipeline("");
    sandbox.write(
        "pipelines/ref/countries.csv",
        "code,name\nDE,Deutschland\nDE,Germany\n",
    );
    sandbox
        .run(["run", "pipelines/p.toml"])
        .assert_code(1)
        .assert_stderr(concat!(
            "error: pipeline `p`: transform 1 (map) failed\n",
            "  caused by: pipelines/ref/countries.csv: line 3: the key `DE` is also on line 2: each key of a lookup file must be on one row\n"
        ));
    sandbox.assert_not_published("out/orders.csv");
}

#[test]
fn a_misspelt_run_value_in_a_template_is_a_config_error() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pipeline("path = \"in/a.csv\"", &["path = \"out/a.csv\""])
            + "\n[[transforms]]\ntype = \"set\"\nfields = { loaded = \"{run_dat}\" }\n",
    );
    sandbox
        .run(["validate", "p.toml"])
        .assert_code(2)
        .assert_stderr(concat!(
            "error: p.toml has 1 problem:\n",
            "  p.toml:11:21: transform 1 (set): `{run_dat}` is not a run value: did you mean `{run_date}`? A field of that name is written `{field:run_dat}`\n"
        ));
}
