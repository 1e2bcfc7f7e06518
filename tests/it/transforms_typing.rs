//! Typing transforms end to end: `cast` (types, time zones at DST changes, `on_error`) and
//! `money` (cents to exact decimals by currency), their exact outputs and rejects; the same
//! conversions computed independently by Python's `decimal` and `zoneinfo` on generated data;
//! and `schema` / `infer_types` on pages of the `http` source.

use serde_json::json;

use crate::http::{example_source, run, run_with_env};
use crate::support::api::{ApiServer, Reply};
use crate::support::{Sandbox, pipeline};

const ORDERS: &str = "\
id,qty,total_cents,currency,paid,shipped_at,note
1,2,450,EUR,yes,01.08.2024 10:30,Zürich – 東京
2,1,-5,USD,no,31.03.2024 02:30,spring forward
3,x,-5,USD,no,31.03.2024 03:30,qty unreadable
4,1,450,XYZ,yes,01.08.2024 10:30,unknown currency
5,1,12.5,EUR,yes,01.08.2024 10:30,cents not whole
6,3,9999999999999999,JPY,true,27.10.2024 02:30,fall back
7,1,123456,KWD,1,15.01.2024 23:59,three decimals
8,1,9999999999999999999,EUR,1,15.01.2024 23:59,beyond 64 bits
";

const TRANSFORMS: &str = r#"
[[transforms]]
type = "cast"
fields = { qty = { type = "integer", on_error = "null" }, paid = "bool", shipped_at = { type = "timestamp", format = "%d.%m.%Y %H:%M", timezone = "Europe/Berlin" } }

[[transforms]]
type = "money"
fields = { total_cents = { to = "decimal", currency_field = "currency", target = "total" } }

[[transforms]]
type = "select"
fields = ["id", "qty", "total", "currency", "paid", "shipped_at", "note"]
"#;

fn orders_pipeline(extra: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        format!(
            "name = \"p\"\n{}{TRANSFORMS}{extra}",
            pipeline(
                "path = \"in/orders.csv\"",
                &["path = \"out/orders.ndjson\""]
            )
        ),
    );
    sandbox.write("in/orders.csv", ORDERS);
    sandbox
}

#[test]
fn cast_and_money_deliver_exact_values_and_set_aside_what_does_not_convert() {
    let sandbox = orders_pipeline("\n[rejects]\npath = \"rejects.ndjson\"\n");
    sandbox
        .run(["-q", "run", "--report", "report.json", "p.toml"])
        .assert_success();
    // The value made null as asked is said, not passed over in silence.
    let report: serde_json::Value = serde_json::from_str(&sandbox.read("report.json")).unwrap();
    assert_eq!(
        report["warnings"],
        json!([
            "transform 1 (cast): `qty`: 1 values did not cast and were written as null (`on_error`); the first: record 3 of in/orders.csv: `x` is not an integer"
        ])
    );
    assert_eq!(
        sandbox.read("out/orders.ndjson"),
        concat!(
            r#"{"id":"1","qty":2,"total":4.50,"currency":"EUR","paid":true,"shipped_at":"2024-08-01T10:30:00+02:00","note":"Zürich – 東京"}"#,
            "\n",
            r#"{"id":"3","qty":null,"total":-0.05,"currency":"USD","paid":false,"shipped_at":"2024-03-31T03:30:00+02:00","note":"qty unreadable"}"#,
            "\n",
            r#"{"id":"7","qty":1,"total":123.456,"currency":"KWD","paid":true,"shipped_at":"2024-01-15T23:59:00+01:00","note":"three decimals"}"#,
            "\n",
        )
    );
    assert_eq!(
        sandbox.read("rejects.ndjson"),
        concat!(
            r#"{"file":"in/orders.csv","line":null,"column":null,"record":2,"field":"shipped_at","reason":"`shipped_at`: `31.03.2024 02:30` does not exist in Europe/Berlin: the clocks go forward past it","raw":"{\"id\":\"2\",\"qty\":\"1\",\"total_cents\":\"-5\",\"currency\":\"USD\",\"paid\":\"no\",\"shipped_at\":\"31.03.2024 02:30\",\"note\":\"spring forward\"}"}"#,
            "\n",
            r#"{"file":"in/orders.csv","line":null,"column":null,"record":6,"field":"shipped_at","reason":"`shipped_at`: `27.10.2024 02:30` is ambiguous in Europe/Berlin: the clocks go back and that time happens twice, at +02:00 and at +01:00","raw":"{\"id\":\"6\",\"qty\":\"3\",\"total_cents\":\"9999999999999999\",\"currency\":\"JPY\",\"paid\":\"true\",\"shipped_at\":\"27.10.2024 02:30\",\"note\":\"fall back\"}"}"#,
            "\n",
            r#"{"file":"in/orders.csv","line":null,"column":null,"record":4,"field":"total_cents","reason":"`total_cents`: `XYZ` in `currency` is not an ISO 4217 currency code this knows: set `exponent` if all amounts share one","raw":"{\"id\":\"4\",\"qty\":1,\"total_cents\":\"450\",\"currency\":\"XYZ\",\"paid\":true,\"shipped_at\":\"2024-08-01T10:30:00+02:00\",\"note\":\"unknown currency\"}"}"#,
            "\n",
            r#"{"file":"in/orders.csv","line":null,"column":null,"record":5,"field":"total_cents","reason":"`total_cents`: `12.5` is not a whole number of minor units","raw":"{\"id\":\"5\",\"qty\":1,\"total_cents\":\"12.5\",\"currency\":\"EUR\",\"paid\":true,\"shipped_at\":\"2024-08-01T10:30:00+02:00\",\"note\":\"cents not whole\"}"}"#,
            "\n",
            r#"{"file":"in/orders.csv","line":null,"column":null,"record":8,"field":"total_cents","reason":"`total_cents`: `9999999999999999999` is too large for 64-bit minor units","raw":"{\"id\":\"8\",\"qty\":1,\"total_cents\":\"9999999999999999999\",\"currency\":\"EUR\",\"paid\":true,\"shipped_at\":\"2024-01-15T23:59:00+01:00\",\"note\":\"beyond 64 bits\"}"}"#,
            "\n",
        )
    );
}

#[test]
fn without_rejects_the_first_refused_record_fails_the_run() {
    let sandbox = orders_pipeline("");
    sandbox.run(["run", "p.toml"]).assert_code(1).assert_stderr(
        "error: pipeline `p`: transform 1 (cast) failed\n  caused by: in/orders.csv: record 2: `shipped_at`: `31.03.2024 02:30` does not exist in Europe/Berlin: the clocks go forward past it; a `[rejects]` table sets such records aside and lets the run go on\n",
    );
    sandbox.assert_not_published("out/orders.ndjson");
}

#[test]
fn an_unknown_time_zone_is_a_config_error() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        format!(
            "name = \"p\"\n{}\n[[transforms]]\ntype = \"cast\"\nfields = {{ at = {{ type = \"timestamp\", convert_to = \"Europe/Berln\" }} }}\n",
            pipeline("path = \"a.csv\"", &["path = \"out.ndjson\""])
        ),
    );
    let outcome = sandbox.run(["validate", "p.toml"]);
    outcome.assert_code(2);
    assert!(
        outcome.stderr.contains(
            "`Europe/Berln` is not a time zone: write an IANA name such as `Europe/Berlin`, `America/New_York` or `UTC`"
        ),
        "{}",
        outcome.stderr
    );
}

/// Computes what the pipeline of [`python_computes_the_same_amounts_and_times`] must deliver,
/// with Python's `decimal` and `zoneinfo` only: the CSV it writes, then one line per reject
/// (`record,field`).
const EXPECTED_BY_PYTHON: &str = r#"
import json, sys
from datetime import datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

EXPONENTS = {"EUR": 2, "USD": 2, "JPY": 0, "KRW": 0, "KWD": 3, "BHD": 3, "CLF": 4}
berlin = ZoneInfo("Europe/Berlin")
rows, rejects = [], []
for number, line in enumerate(open(sys.argv[1], encoding="utf-8"), start=1):
    record = json.loads(line)
    local = datetime.strptime(record["at"], "%Y-%m-%d %H:%M")
    early, late = local.replace(tzinfo=berlin, fold=0), local.replace(tzinfo=berlin, fold=1)
    exists = early.astimezone(timezone.utc).astimezone(berlin).replace(tzinfo=None) == local
    if not exists or early.utcoffset() != late.utcoffset():
        rejects.append(f"{number},at")
        continue
    exponent = EXPONENTS.get(record["currency"])
    if exponent is None:
        rejects.append(f"{number},cents")
        continue
    amount = format(Decimal(record["cents"]).scaleb(-exponent), "f")
    at = early.astimezone(timezone.utc).isoformat()
    rows.append(f"{record['id']},{amount},{at}")
print("id,amount,at")
print("\n".join(rows))
print("--")
print("\n".join(rejects))
"#;

/// A small deterministic generator (64-bit LCG), so the data is the same on every run.
struct Numbers(u64);

impl Numbers {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn python_computes_the_same_amounts_and_times() {
    if !crate::support::python_available() {
        return;
    }
    let sandbox = Sandbox::new();
    let mut numbers = Numbers(17);
    // Days of both 2024 DST changes in Berlin and two plain ones, at every hour: the gap and
    // the overlap come up, and times either side of them.
    let days = ["2024-03-31", "2024-10-27", "2024-01-15", "2024-07-01"];
    let currencies = ["EUR", "USD", "JPY", "KRW", "KWD", "BHD", "CLF", "XTS"];
    let mut input = String::new();
    for id in 1..=600u64 {
        let magnitude = match numbers.next(4) {
            0 => numbers.next(1000),
            1 => numbers.next(1 << 31),
            2 => numbers.next(1 << 62),
            _ => [0, 1, 5, i64::MAX as u64][numbers.next(4) as usize],
        } as i64;
        let cents = if numbers.next(3) == 0 {
            -magnitude
        } else {
            magnitude
        };
        let at = format!(
            "{} {:02}:{:02}",
            days[numbers.next(4) as usize],
            numbers.next(24),
            [0, 30, 59][numbers.next(3) as usize]
        );
        let currency = currencies[numbers.next(currencies.len() as u64) as usize];
        input.push_str(
            &json!({"id": id, "cents": cents, "currency": currency, "at": at}).to_string(),
        );
        input.push('\n');
    }
    sandbox.write("in/orders.ndjson", &input);
    sandbox.write("expected.py", EXPECTED_BY_PYTHON);
    sandbox.write(
        "p.toml",
        format!(
            r#"name = "p"
{}
[[transforms]]
type = "cast"
fields = {{ at = {{ type = "timestamp", format = "%Y-%m-%d %H:%M", timezone = "Europe/Berlin", convert_to = "UTC" }} }}

[[transforms]]
type = "money"
fields = {{ cents = {{ to = "decimal", currency_field = "currency", target = "amount" }} }}

[[transforms]]
type = "select"
fields = ["id", "amount", "at"]

[rejects]
path = "rejects.ndjson"
"#,
            pipeline("path = \"in/orders.ndjson\"", &["path = \"out/orders.csv\""])
        ),
    );
    sandbox.run(["-q", "run", "p.toml"]).assert_success();
    let expected = std::process::Command::new("python3")
        .arg(sandbox.join("expected.py"))
        .arg(sandbox.join("in/orders.ndjson"))
        .output()
        .expect("python3 runs");
    assert!(
        expected.status.success(),
        "{}",
        String::from_utf8_lossy(&expected.stderr)
    );
    let expected = String::from_utf8(expected.stdout).unwrap();
    let (expected_csv, expected_rejects) = expected.split_once("--\n").unwrap();
    let delivered = sandbox.read("out/orders.csv");
    assert_eq!(delivered.replace("\r\n", "\n"), expected_csv);
    let rejects: String = sandbox
        .read("rejects.ndjson")
        .lines()
        .map(|line| {
            let reject: serde_json::Value = serde_json::from_str(line).unwrap();
            format!(
                "{},{}\n",
                reject["record"],
                reject["field"].as_str().unwrap()
            )
        })
        .collect();
    let mut rejects: Vec<&str> = rejects.lines().collect();
    rejects.sort_by_key(|line| line.split(',').next().unwrap().parse::<u64>().unwrap());
    let expected_rejects: Vec<&str> = expected_rejects.lines().collect();
    assert_eq!(rejects, expected_rejects);
    assert!(
        expected_csv.lines().count() > 300 && expected_rejects.len() > 50,
        "the data has both outcomes"
    );
}

#[test]
fn the_finance_example_turns_cents_into_amounts_by_currency() {
    let sandbox = Sandbox::new();
    let server = ApiServer::start(|_request| {
        Reply::json(
            200,
            &json!({"count": 4, "next": null, "results": [
                {"id": 9001, "status": 40, "currency": "EUR", "total_price": 4590, "shipping_price": 495, "placed_at": "2024-10-26T23:30:00Z"},
                {"id": 9002, "status": 10, "currency": "JPY", "total_price": 4590, "shipping_price": 0, "placed_at": "2024-10-27T12:00:00Z"},
                {"id": 9003, "status": 40, "currency": "BTC", "total_price": 100, "shipping_price": 0, "placed_at": "2024-10-27T12:00:00Z"},
                {"id": 9004, "status": 40, "currency": "KWD", "total_price": -1005, "shipping_price": 5, "placed_at": "2024-03-31T00:59:59+00:00"},
            ]}),
        )
    });
    let source = example_source("cents-to-finance-csv.toml", &server)
        .replace("max_rejects = \"1%\"", "max_rejects = 1");
    let (outcome, report) =
        run_with_env(&sandbox, &source, &[("STORE_API_TOKEN", "store-token-1")]);
    outcome.assert_success();
    assert_eq!(
        sandbox.read("out/orders-01.ndjson"),
        concat!(
            r#"{"order_id":9001,"order_date":"2024-10-27","status":"shipped","currency":"EUR","total":45.90,"shipping":4.95}"#,
            "\n",
            r#"{"order_id":9002,"order_date":"2024-10-27","status":"unpaid","currency":"JPY","total":4590,"shipping":0}"#,
            "\n",
            r#"{"order_id":9004,"order_date":"2024-03-31","status":"shipped","currency":"KWD","total":-1.005,"shipping":0.005}"#,
            "\n",
        )
    );
    let rejects_file = sandbox
        .files("rejects")
        .into_iter()
        .next()
        .expect("a rejects file");
    let reject: serde_json::Value =
        serde_json::from_str(sandbox.read(&rejects_file).trim()).unwrap();
    assert_eq!(reject["record"], 3);
    assert_eq!(
        reject["reason"],
        "`shipping_price`: `BTC` in `currency` is not an ISO 4217 currency code this knows: set `exponent` if all amounts share one"
    );
    assert_eq!(report["rejects"]["total"], 1, "{report}");
}

#[test]
fn a_csv_export_is_typed_by_the_schema_and_its_misfits_are_rejects_numbered_in_the_page() {
    let sandbox = Sandbox::new();
    let server = ApiServer::start(|_request| {
        Reply::Answer {
        status: 200,
        headers: vec![("content-type".into(), "text/csv".into())],
        body: "id,amount,paid,at\n1,4.50,yes,2024-10-27 01:30:00\n2,4;50,no,2024-10-27 01:30:00\n3,99999999999999999.99,no,2024-10-27 03:30:00\n"
            .into(),
    }
    });
    let source = format!(
        r#"url = "{}"
format = {{ type = "csv" }}
schema = {{ id = "integer", amount = "decimal", paid = "bool", at = {{ type = "timestamp", timezone = "Europe/Berlin" }} }}

[rejects]
path = "rejects.ndjson"
"#,
        server.url("/export.csv")
    );
    let (outcome, _) = run(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(
        sandbox.read("out/orders-01.ndjson"),
        concat!(
            r#"{"id":1,"amount":4.50,"paid":true,"at":"2024-10-27T01:30:00+02:00"}"#,
            "\n",
            r#"{"id":3,"amount":99999999999999999.99,"paid":false,"at":"2024-10-27T03:30:00+01:00"}"#,
            "\n",
        )
    );
    let reject: serde_json::Value =
        serde_json::from_str(sandbox.read("rejects.ndjson").trim()).unwrap();
    assert_eq!(
        (
            reject["file"].as_str().unwrap(),
            &reject["record"],
            reject["field"].as_str().unwrap(),
            reject["reason"].as_str().unwrap()
        ),
        (
            format!("{} (page 1)", server.url("/export.csv")).as_str(),
            &json!(2),
            "amount",
            "`4;50` is not a decimal number"
        )
    );
}

#[test]
fn infer_types_types_an_xml_page() {
    let sandbox = Sandbox::new();
    let server = ApiServer::start(|_request| {
        Reply::Answer {
        status: 200,
        headers: vec![("content-type".into(), "application/xml".into())],
        body: r#"<?xml version="1.0"?><orders><order><id>7</id><code>007</code><total>12.50</total><paid>true</paid><at>2024-08-01T10:30:00+02:00</at><city>Zürich</city></order></orders>"#
            .into(),
    }
    });
    let source = format!(
        "url = \"{}\"\nformat = {{ type = \"xml\", record_path = \"orders/order\" }}\ninfer_types = true\n",
        server.url("/orders.xml")
    );
    let (outcome, _) = run(&sandbox, &source);
    outcome.assert_success();
    assert_eq!(
        sandbox.read("out/orders-01.ndjson"),
        "{\"id\":7,\"code\":\"007\",\"total\":12.50,\"paid\":true,\"at\":\"2024-08-01T10:30:00+02:00\",\"city\":\"Zürich\"}\n"
    );
}
