//! `filter`, `validate` and `dedupe` in real pipelines: what is kept, what goes to the rejects
//! (record number, field, reason), `max_rejects`, records held by `dedupe` until the input
//! ends, and expressions checked by `longshore validate`.

use crate::support::{Sandbox, pipeline};

const ORDERS: &str = "id,status,amount\n1,completed,150\n2,completed,99.99\n3,open,500\n4,completed,n/a\n5,completed,100.01\n";

/// A pipeline over `in/*.csv` into `out/{source_stem}.ndjson`, with `transforms` (TOML) and
/// `extra` after them.
fn sandbox_with(transforms: &str, extra: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        format!(
            "name = \"p\"\n{}\n{transforms}\n{extra}",
            pipeline(
                "path = \"in/*.csv\"",
                &["path = \"out/{source_stem}.ndjson\""]
            )
        ),
    );
    sandbox
}

#[test]
fn filter_on_untyped_csv_keeps_matches_and_rejects_the_undecidable() {
    let sandbox = sandbox_with(
        "[[transforms]]\ntype = \"filter\"\nexpression = 'status == \"completed\" && amount > 100'\n",
        "[rejects]\npath = \"rejects.ndjson\"\n",
    );
    sandbox.write("in/orders.csv", ORDERS);
    sandbox.run(["-q", "run", "p.toml"]).assert_success();
    assert_eq!(
        sandbox.read("out/orders.ndjson"),
        concat!(
            "{\"id\":\"1\",\"status\":\"completed\",\"amount\":\"150\"}\n",
            "{\"id\":\"5\",\"status\":\"completed\",\"amount\":\"100.01\"}\n",
        )
    );
    assert_eq!(
        sandbox.read("rejects.ndjson"),
        concat!(
            r#"{"file":"in/orders.csv","line":null,"column":null,"record":4,"field":"amount","reason":"`amount`: `n/a` is not a number, in `amount > 100`","raw":"{\"id\":\"4\",\"status\":\"completed\",\"amount\":\"n/a\"}"}"#,
            "\n"
        )
    );
}

const VALIDATE: &str = r#"[[transforms]]
type = "validate"
fields.id = { required = true, type = "integer", unique = true }
fields.email = { pattern = '[^@]+@[^@]+' }
rules = [{ name = "positive total", expression = "total > 0" }]
"#;

const CUSTOMERS: &str = "id,email,total\n1,a@x.com,10\n2,nobody,5\n,c@x.com,7\n1,d@x.com,3\n5,e@x.com,-2\n6,f@x.com,1.5\n";

#[test]
fn validate_sends_each_failing_record_to_the_rejects_with_its_reason() {
    let sandbox = sandbox_with(VALIDATE, "[rejects]\npath = \"rejects.ndjson\"\n");
    sandbox.write("in/customers.csv", CUSTOMERS);
    sandbox.run(["-q", "run", "p.toml"]).assert_success();
    assert_eq!(
        sandbox.read("out/customers.ndjson"),
        concat!(
            "{\"id\":\"1\",\"email\":\"a@x.com\",\"total\":\"10\"}\n",
            "{\"id\":\"6\",\"email\":\"f@x.com\",\"total\":\"1.5\"}\n",
        )
    );
    let rejects: Vec<String> = sandbox
        .read("rejects.ndjson")
        .lines()
        .map(|line| {
            let reject: serde_json::Value = serde_json::from_str(line).unwrap();
            format!(
                "{} {} {}",
                reject["record"], reject["field"], reject["reason"]
            )
        })
        .collect();
    assert_eq!(
        rejects,
        [
            r#"2 "email" "`email`: does not match `[^@]+@[^@]+`""#,
            r#"3 "id" "`id`: required, but null""#,
            r#"4 "id" "`id`: `1` is not unique: an earlier record had it""#,
            r#"5 null "rule \"positive total\" failed""#,
        ]
    );
}

#[test]
fn max_rejects_fails_a_run_that_validate_rejects_too_much_of() {
    let sandbox = sandbox_with(
        VALIDATE,
        "[rejects]\npath = \"rejects.ndjson\"\nmax_rejects = 3\n",
    );
    sandbox.write("in/customers.csv", CUSTOMERS);
    sandbox.run(["run", "p.toml"]).assert_code(1).assert_stderr(
        "error: pipeline `p`: rejects failed\n  caused by: 4 of 6 records were rejected, more than max_rejects = 3: nothing was published. The first: in/customers.csv: record 2, field `email`: `email`: does not match `[^@]+@[^@]+`\n",
    );
    sandbox.assert_not_published("out/customers.ndjson");
}

const FIRST_FILE: &str = "order_id,v\n1,a1\n2,a2\n3,a3\n2,a4\n";
const SECOND_FILE: &str = "order_id,v\n4,b1\n1,b2\n5,b3\n4,b4\n";

#[test]
fn dedupe_keep_first_streams_the_first_of_each_key_across_files() {
    let sandbox = sandbox_with(
        "[[transforms]]\ntype = \"dedupe\"\nkey = [\"order_id\"]\n",
        "",
    );
    sandbox.write("in/a.csv", FIRST_FILE);
    sandbox.write("in/b.csv", SECOND_FILE);
    sandbox.run(["-q", "run", "p.toml"]).assert_success();
    assert_eq!(
        sandbox.read("out/a.ndjson"),
        "{\"order_id\":\"1\",\"v\":\"a1\"}\n{\"order_id\":\"2\",\"v\":\"a2\"}\n{\"order_id\":\"3\",\"v\":\"a3\"}\n"
    );
    assert_eq!(
        sandbox.read("out/b.ndjson"),
        "{\"order_id\":\"4\",\"v\":\"b1\"}\n{\"order_id\":\"5\",\"v\":\"b3\"}\n"
    );
}

#[test]
fn dedupe_keep_last_delivers_the_last_of_each_key_with_its_file_and_number() {
    // `validate` after `dedupe` refuses a held record: its reject names its own file and
    // record number.
    let sandbox = sandbox_with(
        "[[transforms]]\ntype = \"dedupe\"\nkey = [\"order_id\"]\nkeep = \"last\"\n\n[[transforms]]\ntype = \"validate\"\nfields.v = { one_of = [\"a1\", \"a3\", \"a4\", \"b2\", \"b3\"] }\n",
        "[rejects]\npath = \"rejects.ndjson\"\n",
    );
    sandbox.write("in/a.csv", FIRST_FILE);
    sandbox.write("in/b.csv", SECOND_FILE);
    sandbox
        .run(["-q", "run", "p.toml", "--report", "report.json"])
        .assert_success();
    // 1 is last in b.csv; 2 and 3 last in a.csv, in the order of their last occurrence.
    assert_eq!(
        sandbox.read("out/a.ndjson"),
        "{\"order_id\":\"3\",\"v\":\"a3\"}\n{\"order_id\":\"2\",\"v\":\"a4\"}\n"
    );
    assert_eq!(
        sandbox.read("out/b.ndjson"),
        "{\"order_id\":\"1\",\"v\":\"b2\"}\n{\"order_id\":\"5\",\"v\":\"b3\"}\n"
    );
    assert_eq!(
        sandbox.read("rejects.ndjson"),
        concat!(
            r#"{"file":"in/b.csv","line":null,"column":null,"record":4,"field":"v","reason":"`v`: `b4` is not one of \"a1\", \"a3\", \"a4\", \"b2\", \"b3\"","raw":"{\"order_id\":\"4\",\"v\":\"b4\"}"}"#,
            "\n"
        )
    );
    let report: serde_json::Value = serde_json::from_str(&sandbox.read("report.json")).unwrap();
    let stages: Vec<String> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{} {} {}", s["stage"], s["records_in"], s["records_out"]))
        .collect();
    assert_eq!(
        stages,
        [
            r#""source (file)" 8 8"#,
            r#""transform 1 (dedupe)" 8 5"#,
            r#""transform 2 (validate)" 5 4"#,
            r#""sink 1 (file)" 4 4"#,
            r#""rejects" 1 1"#,
        ]
    );
}

#[test]
fn a_bad_expression_is_reported_by_validate_with_its_column() {
    let sandbox = sandbox_with(
        "[[transforms]]\ntype = \"filter\"\nexpression = 'status == \"x\" && '\n",
        "",
    );
    sandbox.run(["validate", "p.toml"]).assert_code(2).assert_stderr(
        "error: p.toml has 1 problem:\n  p.toml:12:14: transform 1 (filter): `expression`: column 18: expected a value after `&&`\n",
    );
}
