//! The `sql` transform and the Parquet format (the `polars` feature): results checked against
//! sums Python's `decimal` computes on generated data, joins with a reference file, window
//! functions, NULL semantics, Parquet round trips of every type; and, in a build without the
//! feature, the errors that say how to build it.

use crate::support::{Sandbox, pipeline};

/// A pipeline over `in/*.csv` (typed by inference) into `out/result.ndjson` through `transforms`.
fn sql_sandbox(transforms: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write(
        "p.toml",
        format!(
            "name = \"p\"\n{}\n{transforms}\n",
            pipeline(
                "path = \"in/*.csv\"\ninfer_types = true",
                &["path = \"out/result.ndjson\""]
            )
        ),
    );
    sandbox
}

#[cfg(not(feature = "polars"))]
#[test]
fn without_the_feature_sql_and_parquet_say_how_to_build_them() {
    let sandbox = sql_sandbox("[[transforms]]\ntype = \"sql\"\nquery = \"SELECT * FROM input\"\n");
    let outcome = sandbox.run(["validate", "p.toml"]);
    outcome.assert_code(2);
    outcome.assert_stderr_contains("transform 1 (sql): `sql` needs longshore built with the `polars` feature: `cargo build --release --features polars`");
    sandbox.write("in/a.csv", "id\n1\n");
    let outcome = sandbox.run(["convert", "in/a.csv", "out/a.parquet"]);
    outcome.assert_code(2);
    outcome.assert_stderr_contains("out/a.parquet: `parquet` needs longshore built with the `polars` feature: `cargo build --release --features polars`");
    let outcome = sandbox.run(["convert", "in/a.csv", "out/a.csv", "--sql", "SELECT 1"]);
    outcome.assert_code(2);
    outcome.assert_stderr_contains("--sql needs longshore built with the `polars` feature");
}

#[cfg(feature = "polars")]
mod with_polars {
    use super::*;

    const ORDERS: &str = "order_id,customer,total,status\n1,acme,10.10,paid\n2,acme,0.20,paid\n3,zeta,5.00,open\n4,zeta,,paid\n5,mu,7.35,paid\n";

    #[test]
    fn sql_totals_per_customer_exact_to_the_cent_with_nulls_left_out() {
        let sandbox = sql_sandbox(
            "[[transforms]]\ntype = \"sql\"\nquery = \"\"\"SELECT customer, sum(total) AS total, count(*) AS orders, count(total) AS priced
FROM input GROUP BY customer ORDER BY customer\"\"\"\n",
        );
        sandbox.write("in/orders.csv", ORDERS);
        sandbox.run(["-q", "run", "p.toml"]).assert_success();
        assert_eq!(
            sandbox.read("out/result.ndjson"),
            concat!(
                "{\"customer\":\"acme\",\"total\":10.30,\"orders\":2,\"priced\":2}\n",
                "{\"customer\":\"mu\",\"total\":7.35,\"orders\":1,\"priced\":1}\n",
                "{\"customer\":\"zeta\",\"total\":5.00,\"orders\":2,\"priced\":1}\n",
            )
        );
    }

    #[test]
    fn sql_joins_a_reference_file_and_ranks_with_a_window_function() {
        let sandbox = sql_sandbox(
            "[[transforms]]\ntype = \"sql\"\ntables = { customers = \"ref/customers.csv\" }\nquery = \"\"\"
SELECT c.name, i.order_id, i.total,
       row_number() OVER (PARTITION BY i.customer ORDER BY i.total DESC) AS rank
FROM input i JOIN customers c ON c.id = i.customer
WHERE i.total IS NOT NULL
ORDER BY c.name, rank\"\"\"\n",
        );
        sandbox.write("in/orders.csv", ORDERS);
        sandbox.write(
            "ref/customers.csv",
            "id,name\nacme,Acme AG\nzeta,Zeta Ltd\n",
        );
        sandbox.run(["-q", "run", "p.toml"]).assert_success();
        assert_eq!(
            sandbox.read("out/result.ndjson"),
            concat!(
                "{\"name\":\"Acme AG\",\"order_id\":1,\"total\":10.10,\"rank\":1}\n",
                "{\"name\":\"Acme AG\",\"order_id\":2,\"total\":0.20,\"rank\":2}\n",
                "{\"name\":\"Zeta Ltd\",\"order_id\":3,\"total\":5.00,\"rank\":1}\n",
            )
        );
    }

    /// A table file is read as a source's file is: gzip-compressed too.
    #[test]
    fn a_gzipped_table_is_read() {
        use std::io::Write;
        let sandbox = sql_sandbox(
            "[[transforms]]\ntype = \"sql\"\ntables = { customers = \"ref/customers.csv.gz\" }\nquery = \"SELECT c.name, count(*) AS orders FROM input i JOIN customers c ON c.id = i.customer GROUP BY c.name ORDER BY c.name\"\n",
        );
        sandbox.write("in/orders.csv", ORDERS);
        let mut gzipped = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzipped
            .write_all(b"id,name\nacme,Acme AG\nzeta,Zeta Ltd\n")
            .unwrap();
        sandbox.write("ref/customers.csv.gz", gzipped.finish().unwrap());
        sandbox.run(["-q", "run", "p.toml"]).assert_success();
        assert_eq!(
            sandbox.read("out/result.ndjson"),
            "{\"name\":\"Acme AG\",\"orders\":2}\n{\"name\":\"Zeta Ltd\",\"orders\":2}\n"
        );
    }

    #[test]
    fn a_bad_query_fails_the_run_with_polars_message_and_the_hint() {
        let sandbox =
            sql_sandbox("[[transforms]]\ntype = \"sql\"\nquery = \"SELECT nope FROM input\"\n");
        sandbox.write("in/orders.csv", ORDERS);
        let outcome = sandbox.run(["-q", "run", "p.toml"]);
        outcome.assert_code(1);
        assert!(
            outcome.stderr.contains("transform 1 (sql) failed")
                && outcome.stderr.contains("the query failed: ")
                && outcome.stderr.contains("nope"),
            "{}",
            outcome.stderr
        );
        sandbox.assert_not_published("out/result.ndjson");
    }

    #[test]
    fn more_records_than_max_rows_fail_clearly() {
        let sandbox = sql_sandbox(
            "[[transforms]]\ntype = \"sql\"\nmax_rows = 3\nquery = \"SELECT * FROM input\"\n",
        );
        sandbox.write("in/orders.csv", ORDERS);
        let outcome = sandbox.run(["-q", "run", "p.toml"]);
        outcome.assert_code(1);
        outcome.assert_stderr_contains("the input (table `input`) has more than max_rows = 3 records: raise `max_rows`, or filter and select before the `sql` transform");
        sandbox.assert_not_published("out/result.ndjson");
    }

    /// Past `max_bytes` the input, or a table, fails the run before the query.
    #[test]
    fn columns_larger_than_max_bytes_fail_clearly() {
        let sandbox = sql_sandbox(
            "[[transforms]]\ntype = \"sql\"\nmax_bytes = 64\nquery = \"SELECT * FROM input\"\n",
        );
        sandbox.write("in/orders.csv", ORDERS);
        let outcome = sandbox.run(["-q", "run", "p.toml"]);
        outcome.assert_code(1);
        outcome.assert_stderr_contains("the input (table `input`) takes more than max_bytes = 64 bytes as columns (after 5 records): raise `max_bytes`, or filter and select before the `sql` transform");
        sandbox.assert_not_published("out/result.ndjson");

        let sandbox = sql_sandbox(
            "[[transforms]]\ntype = \"sql\"\nmax_bytes = 64\ntables = { big = \"in/orders.csv\" }\nquery = \"SELECT * FROM big\"\n",
        );
        sandbox.write("in/orders.csv", ORDERS);
        let outcome = sandbox.run(["-q", "run", "p.toml"]);
        outcome.assert_code(1);
        assert!(
            outcome.stderr.contains("table `big`: ")
                && outcome.stderr.contains(
                    "orders.csv takes more than max_bytes = 64 bytes as columns (after 5 records)"
                ),
            "{}",
            outcome.stderr
        );
    }

    /// Generated orders summed by Python's `decimal`, and by the `sql` transform.
    #[test]
    fn sums_match_what_python_computes_on_generated_data() {
        if !crate::support::python_available() {
            return;
        }
        let sandbox = sql_sandbox(
            "[[transforms]]\ntype = \"sql\"\nquery = \"SELECT customer, sum(total) AS total, min(total) AS low, max(total) AS high FROM input GROUP BY customer ORDER BY customer\"\n",
        );
        let mut csv = String::from("customer,total\n");
        let mut seed: u64 = 2026;
        for _ in 0..2_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let customer = (seed >> 33) % 17;
            let cents = (seed >> 12) % 10_000_000;
            let sign = if (seed >> 60).is_multiple_of(5) {
                "-"
            } else {
                ""
            };
            csv.push_str(&format!(
                "c{customer:02},{sign}{}.{:02}\n",
                cents / 100,
                cents % 100
            ));
        }
        sandbox.write("in/orders.csv", &csv);
        sandbox.run(["-q", "run", "p.toml"]).assert_success();
        let expected = std::process::Command::new("python3")
            .arg("-c")
            .arg(
                r#"import csv, decimal, json, sys
groups = {}
for row in csv.DictReader(open(sys.argv[1])):
    groups.setdefault(row["customer"], []).append(decimal.Decimal(row["total"]))
for customer in sorted(groups):
    v = groups[customer]
    print(json.dumps({"customer": customer, "total": "T", "low": "L", "high": "H"}, separators=(",", ":")).replace('"T"', str(sum(v))).replace('"L"', str(min(v))).replace('"H"', str(max(v))))
"#,
            )
            .arg(sandbox.join("in/orders.csv"))
            .output()
            .expect("python3 runs");
        assert!(
            expected.status.success(),
            "{}",
            String::from_utf8_lossy(&expected.stderr)
        );
        assert_eq!(
            sandbox.read("out/result.ndjson"),
            String::from_utf8(expected.stdout).unwrap()
        );
    }

    #[test]
    fn parquet_round_trips_every_type() {
        let sandbox = Sandbox::new();
        let lines = concat!(
            r#"{"id":1,"amount":4.50,"rate":0.25,"paid":true,"day":"2024-02-29","note":"Zürich – 東京","tags":["a","b"],"missing":null}"#,
            "\n",
            r#"{"id":-2,"amount":-0.05,"rate":1.5e-3,"paid":false,"day":"2024-10-27","note":"","tags":[],"missing":null}"#,
            "\n",
        );
        sandbox.write("in/typed.ndjson", lines);
        sandbox
            .run(["-q", "convert", "in/typed.ndjson", "out/typed.parquet"])
            .assert_success();
        sandbox
            .run(["-q", "convert", "out/typed.parquet", "out/back.ndjson"])
            .assert_success();
        assert_eq!(
            sandbox.read("out/back.ndjson"),
            concat!(
                r#"{"id":1,"amount":4.50,"rate":0.25,"paid":true,"day":"2024-02-29","note":"Zürich – 東京","tags":"[\"a\",\"b\"]","missing":null}"#,
                "\n",
                r#"{"id":-2,"amount":-0.05,"rate":0.0015,"paid":false,"day":"2024-10-27","note":"","tags":"[]","missing":null}"#,
                "\n",
            )
        );
    }

    /// Whether Python's polars is installed (`scripts/test` installs it); under CI it must be.
    fn python_polars() -> bool {
        let found = crate::support::python_available()
            && std::process::Command::new("python3")
                .args(["-c", "import polars"])
                .output()
                .is_ok_and(|output| output.status.success());
        if !found {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "Python's polars is needed in CI"
            );
            eprintln!(
                "skipping: `python3 -m pip install polars` to check Parquet files with another reader"
            );
        }
        found
    }

    #[test]
    fn parquet_files_are_read_by_python_polars_and_written_by_it_are_read_here() {
        if !python_polars() {
            return;
        }
        let sandbox = Sandbox::new();
        sandbox.write(
            "in/typed.ndjson",
            concat!(
                r#"{"id":1,"amount":4.50,"rate":0.25,"paid":true,"note":"Zürich – 東京"}"#,
                "\n",
                r#"{"id":-2,"amount":-0.05,"rate":null,"paid":false,"note":""}"#,
                "\n",
            ),
        );
        sandbox
            .run(["-q", "convert", "in/typed.ndjson", "out/ours.parquet"])
            .assert_success();
        let python = |script: &str| {
            let output = std::process::Command::new("python3")
                .args(["-c", script])
                .arg(sandbox.join("out"))
                .output()
                .expect("python3 runs");
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap()
        };
        // Ours, as polars reads it: the types and the values (JSON's 0.25 is an exact decimal).
        assert_eq!(
            python(
                "import polars as pl, sys; f = pl.read_parquet(sys.argv[1] + '/ours.parquet'); print(dict(f.schema)); print(f.rows())"
            ),
            "{'id': Int64, 'amount': Decimal(precision=38, scale=2), 'rate': Decimal(precision=38, scale=2), 'paid': Boolean, 'note': String}\n[(1, Decimal('4.50'), Decimal('0.25'), True, 'Zürich – 東京'), (-2, Decimal('-0.05'), None, False, '')]\n"
        );
        // Theirs, as longshore reads it.
        python(
            "import polars as pl, sys, datetime, decimal; pl.DataFrame({'id': [7, None], 'when': [datetime.datetime(2024, 10, 27, 1, 30, tzinfo=datetime.timezone.utc), None], 'day': [datetime.date(2024, 2, 29), None], 'price': pl.Series([decimal.Decimal('1.25'), decimal.Decimal('-3.10')], dtype=pl.Decimal(10, 2)), 'tags': [['a'], []]}).write_parquet(sys.argv[1] + '/theirs.parquet')",
        );
        sandbox
            .run(["-q", "convert", "out/theirs.parquet", "out/theirs.ndjson"])
            .assert_success();
        assert_eq!(
            sandbox.read("out/theirs.ndjson"),
            concat!(
                r#"{"id":7,"when":"2024-10-27T01:30:00+00:00","day":"2024-02-29","price":1.25,"tags":["a"]}"#,
                "\n",
                r#"{"id":null,"when":null,"day":null,"price":-3.10,"tags":[]}"#,
                "\n",
            )
        );
    }

    /// A declared schema gives text from a CSV file the warehouse's types, in the declared
    /// order, and refuses what would not fit.
    #[test]
    fn parquet_with_a_declared_schema_has_exactly_its_columns_and_types() {
        let sink = |schema: &str| {
            format!(
                "path = \"out/orders.parquet\"\nformat = {{ type = \"parquet\", schema = [{schema}] }}"
            )
        };
        let declared = r#"{ name = "order_id", type = "int32" }, { name = "amount", type = "decimal(12,2)" }, { name = "placed_at", type = "timestamp(ms)" }, { name = "day", type = "date" }, { name = "paid", type = "bool" }, { name = "note", type = "string" }, { name = "discount", type = "float64" }"#;
        let sandbox = Sandbox::new();
        sandbox.write(
            "p.toml",
            format!(
                "name = \"p\"\n{}",
                pipeline("path = \"in/*.csv\"", &[&sink(declared)])
            ),
        );
        sandbox.write(
            "in/orders.csv",
            "note,order_id,amount,placed_at,day,paid\nfirst,1,12.5,2024-10-27T01:30:00.250+02:00,2024-02-29,yes\n,2,-0.05,2024-10-27T01:30:00Z,2024-03-01,0\n",
        );
        sandbox.run(["-q", "run", "p.toml"]).assert_success();
        if python_polars() {
            let output = std::process::Command::new("python3")
                .args([
                    "-c",
                    "import polars as pl, sys; f = pl.read_parquet(sys.argv[1]); print(dict(f.schema)); print(f.rows())",
                ])
                .arg(sandbox.join("out/orders.parquet"))
                .output()
                .expect("python3 runs");
            assert_eq!(
                String::from_utf8_lossy(&output.stdout),
                "{'order_id': Int32, 'amount': Decimal(precision=12, scale=2), 'placed_at': Datetime(time_unit='ms', time_zone='UTC'), 'day': Date, 'paid': Boolean, 'note': String, 'discount': Float64}\n[(1, Decimal('12.50'), datetime.datetime(2024, 10, 26, 23, 30, 0, 250000, tzinfo=zoneinfo.ZoneInfo(key='UTC')), datetime.date(2024, 2, 29), True, 'first', None), (2, Decimal('-0.05'), datetime.datetime(2024, 10, 27, 1, 30, tzinfo=zoneinfo.ZoneInfo(key='UTC')), datetime.date(2024, 3, 1), False, None, None)]\n",
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }

        // What does not fit fails the run naming the record and field; nothing is published.
        for (csv, declared, expected) in [
            (
                "order_id,amount\n1,1.50\n2,1.005\n",
                r#"{ name = "order_id", type = "int64" }, { name = "amount", type = "decimal(12,2)" }"#,
                "record 2, field amount: `1.005` has more than 2 digits after the point, the column's decimal(12,2)",
            ),
            (
                "order_id,amount\n1,1.50\n",
                r#"{ name = "order_id", type = "int64" }"#,
                "record 1, field amount: the field is not in the Parquet `schema`. declare it there, or `drop` or `select` fields before the sink",
            ),
            (
                "order_id,placed_at\n1,2024-10-27T01:30:00\n",
                r#"{ name = "order_id", type = "int64" }, { name = "placed_at", type = "timestamp" }"#,
                "record 1, field placed_at: `2024-10-27 01:30:00` has no offset, and a Parquet timestamp is an instant",
            ),
            (
                "order_id\n3000000000\n",
                r#"{ name = "order_id", type = "int32" }"#,
                "record 1, field order_id: 3000000000 does not fit an int32",
            ),
        ] {
            let sandbox = Sandbox::new();
            sandbox.write(
                "p.toml",
                format!(
                    "name = \"p\"\n{}",
                    pipeline("path = \"in/*.csv\"", &[&sink(declared)])
                ),
            );
            sandbox.write("in/orders.csv", csv);
            let outcome = sandbox.run(["-q", "run", "p.toml"]);
            outcome.assert_code(1);
            outcome.assert_stderr_contains(expected);
            sandbox.assert_not_published("out/orders.parquet");
        }

        // A type that is not one says which are.
        let sandbox = Sandbox::new();
        sandbox.write(
            "p.toml",
            format!(
                "name = \"p\"\n{}",
                pipeline(
                    "path = \"in/*.csv\"",
                    &[&sink(r#"{ name = "id", type = "int" }"#)]
                )
            ),
        );
        let outcome = sandbox.run(["validate", "p.toml"]);
        outcome.assert_code(2);
        outcome.assert_stderr_contains("`int` is not a Parquet type: write one of string, bool, int32, int64, float32, float64, decimal(P,S), date, datetime, timestamp, timestamp(ms|us|ns)");
    }

    /// A Parquet file dropped on SFTP arrives on FTPS as Parquet with the same values and
    /// types (the codec is the same over any transport; the spool and the upload are not).
    #[test]
    fn a_parquet_file_dropped_on_sftp_arrives_on_ftps_as_parquet() {
        use crate::pickup::{longshore, remote_files, sftp_server};
        use crate::support::accounts::{self, USER};
        use crate::support::sshd::SftpServer;
        use crate::support::vsftpd::{FtpMode, FtpServer};
        let Some(vendor) = SftpServer::start() else {
            return;
        };
        let Some(partner) = FtpServer::start(FtpMode::Explicit) else {
            return;
        };
        let sandbox = Sandbox::new();
        let lines = concat!(
            r#"{"id":1,"amount":4.50,"day":"2024-02-29","when":"2024-10-27T01:30:00+02:00","note":"Zürich"}"#,
            "\n",
            r#"{"id":2,"amount":-0.05,"day":null,"when":null,"note":null}"#,
            "\n",
        );
        sandbox.write("orders.ndjson", lines);
        sandbox
            .run(["-q", "convert", "orders.ndjson", "orders-1.parquet"])
            .assert_success();
        let inbound = vendor.data().join("inbound");
        std::fs::create_dir_all(&inbound).unwrap();
        accounts::give_to_test_user(&inbound);
        std::fs::write(
            inbound.join("orders-1.parquet"),
            sandbox.read_bytes("orders-1.parquet"),
        )
        .unwrap();
        sandbox.write(
            "p.toml",
            format!(
                "name = \"p\"\n[source]\ntype = \"sftp\"\ndir = \"inbound\"\nmin_age_secs = 0\nafter = \"delete\"\n{}\n\
                 [[sinks]]\ntype = \"ftps\"\npath = \"outbound/{{source_stem}}.parquet\"\n\
                 [sinks.server]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"{USER}\"\npassword = \"${{env:FTP_PASSWORD}}\"\nca_file = \"{}\"\n",
                sftp_server(&vendor),
                partner.port,
                partner.ca().display()
            ),
        );
        longshore(&sandbox, &[]).assert_success();
        assert_eq!(
            remote_files(&vendor.data(), "inbound"),
            Vec::<String>::new()
        );
        assert_eq!(
            remote_files(&partner.data(), "outbound"),
            ["orders-1.parquet"]
        );
        std::fs::copy(
            partner.data().join("outbound/orders-1.parquet"),
            sandbox.join("received.parquet"),
        )
        .unwrap();
        sandbox
            .run(["-q", "convert", "received.parquet", "received.ndjson"])
            .assert_success();
        assert_eq!(
            sandbox.read("received.ndjson"),
            concat!(
                r#"{"id":1,"amount":4.50,"day":"2024-02-29","when":"2024-10-27T01:30:00+02:00","note":"Zürich"}"#,
                "\n",
                r#"{"id":2,"amount":-0.05,"day":null,"when":null,"note":null}"#,
                "\n",
            )
        );
    }

    /// A `sql` result comes from no one file: a sink path cannot be named after it.
    #[test]
    fn validate_refuses_source_stem_after_sql() {
        let sandbox = Sandbox::new();
        sandbox.write(
            "p.toml",
            "name = \"p\"\n[source]\ntype = \"file\"\npath = \"in/*.csv\"\n[[transforms]]\ntype = \"sql\"\nquery = \"SELECT * FROM input\"\n[[sinks]]\ntype = \"file\"\npath = \"out/{source_stem}.csv\"\n[[sinks]]\ntype = \"sftp\"\npath = \"up/{source_stem}.csv\"\n[sinks.server]\nhost = \"h\"\nuser = \"u\"\npassword = \"pw\"\n[[sinks]]\ntype = \"file\"\npath = \"out/{pipeline}-{run_ts}.csv\"\n",
        );
        let outcome = sandbox.run(["validate", "p.toml"]);
        outcome.assert_code(2);
        for expected in [
            "p.toml:10:8: sink 1: `{source_stem}` names an output after its source file, but the records of transform 1 (sql) come from all the files at once",
            "p.toml:13:8: sink 2: `{source_stem}` names an output after its source file, but the records of transform 1 (sql) come from all the files at once",
        ] {
            outcome.assert_stderr_contains(expected);
        }
        outcome.assert_stderr_contains("error: p.toml has 2 problems");
    }

    #[test]
    fn the_polars_examples_are_valid() {
        let sandbox = Sandbox::new();
        let mut command = sandbox.command(["validate"]);
        command.env("PARTNER_SFTP_PASSWORD", "unused");
        for name in ["customer-totals.toml", "orders-to-parquet.toml"] {
            let text = std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("pipelines/examples/polars")
                    .join(name),
            )
            .unwrap();
            sandbox.write(name, text);
            command.arg(name);
        }
        sandbox.write("ref/customers.csv", "id,name\n");
        crate::support::run(command).assert_success();
    }

    #[test]
    fn convert_sql_writes_the_query_result() {
        let sandbox = Sandbox::new();
        sandbox.write("in/orders.csv", ORDERS);
        sandbox
            .run([
                "-q",
                "convert",
                "in/orders.csv",
                "out/totals.csv",
                "--sql",
                "SELECT status, sum(total) AS total FROM input GROUP BY status ORDER BY status",
            ])
            .assert_success();
        assert_eq!(
            sandbox.read("out/totals.csv").replace("\r\n", "\n"),
            "status,total\nopen,5.00\npaid,17.65\n"
        );
    }
}
