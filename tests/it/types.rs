//! Types for untyped input: `infer_types` and a per-field `schema`, whose misfits are rejects.

use crate::support::{Sandbox, pipeline};

const ORDERS: &str = "id,amount,at,code\n1,12.50,01/08/2024 10:30,007\n2,12;50,02/08/2024 11:00,8\n3,7,yesterday,9\n";

fn typed_pipeline(extra: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    let source = r#"path = "in/*.csv"
schema = { id = "integer", amount = "decimal", at = { type = "timestamp", format = "%d/%m/%Y %H:%M" } }"#;
    sandbox.write(
        "p.toml",
        format!(
            "name = \"p\"\n{}{extra}",
            pipeline(source, &["path = \"out/orders.ndjson\""])
        ),
    );
    sandbox.write("in/orders.csv", ORDERS);
    sandbox
}

#[test]
fn values_that_do_not_fit_the_schema_are_rejects_with_their_field() {
    let sandbox = typed_pipeline("\n[rejects]\npath = \"rejects.ndjson\"\n");
    sandbox.run(["-q", "run", "p.toml"]).assert_success();
    assert_eq!(
        sandbox.read("out/orders.ndjson"),
        "{\"id\":1,\"amount\":12.50,\"at\":\"2024-08-01T10:30:00\",\"code\":\"007\"}\n"
    );
    assert_eq!(
        sandbox.read("rejects.ndjson"),
        concat!(
            r#"{"file":"in/orders.csv","line":null,"column":null,"record":2,"field":"amount","reason":"`12;50` is not a decimal number","raw":"{\"id\":\"2\",\"amount\":\"12;50\",\"at\":\"02/08/2024 11:00\",\"code\":\"8\"}"}"#,
            "\n",
            r#"{"file":"in/orders.csv","line":null,"column":null,"record":3,"field":"at","reason":"`yesterday` is not a timestamp (expected %d/%m/%Y %H:%M)","raw":"{\"id\":\"3\",\"amount\":\"7\",\"at\":\"yesterday\",\"code\":\"9\"}"}"#,
            "\n"
        )
    );
}

#[test]
fn without_rejects_the_first_misfit_fails_the_run() {
    let sandbox = typed_pipeline("");
    sandbox.run(["run", "p.toml"]).assert_code(1).assert_stderr(
        "error: pipeline `p`: source (file) failed\n  caused by: in/orders.csv: record 2, field `amount`: `12;50` is not a decimal number\n",
    );
    sandbox.assert_not_published("out/orders.ndjson");
}

#[test]
fn convert_can_infer_types() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "a.csv",
        "id,price,paid,day,code\n1,9.90,true,2024-08-01,007\n",
    );
    let out = sandbox.run([
        "-q",
        "convert",
        "--infer-types",
        "a.csv",
        "-",
        "--to",
        "ndjson",
    ]);
    out.assert_success();
    assert_eq!(
        out.stdout(),
        "{\"id\":1,\"price\":9.90,\"paid\":true,\"day\":\"2024-08-01\",\"code\":\"007\"}\n"
    );
}

#[test]
fn a_bad_timestamp_format_is_a_config_error() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        pipeline(
            "path = \"a.csv\"\nschema = { at = { type = \"timestamp\", format = \"%Q\" } }",
            &["path = \"out.ndjson\""],
        ),
    );
    sandbox.run(["validate", "p.toml"]).assert_code(2).assert_stderr(
        "error: p.toml has 1 problem:\n  p.toml:4:17: source (file): `%Q` is not a valid strftime format\n",
    );
}
