//! One rule set for ZFS names and properties: zpersist-core's checks are
//! the reference, `nix/lib/rules.json` is their data
//! (zpersist_core::rules), and `nix/lib/rules.nix` applies that data to the
//! module's options. This file fails when the committed rules.json is stale,
//! and checks that an evaluation of the modules (Nix 2.8, the flake-locked
//! lib) and `Plan::parse` accept and refuse the same things.

use zpersist_e2e::nix;

/// nix/lib/rules.json is generated from zpersist-core; this fails when it
/// is stale. Regenerate with
/// `UPDATE_RULES=1 cargo test -p zpersist-e2e --test nix_rules`.
#[test]
fn rules_json_is_up_to_date() {
    zpersist_e2e::generated::assert_up_to_date(
        "nix/lib/rules.json",
        &zpersist_core::rules::nix_rules_json(),
        "UPDATE_RULES",
        zpersist_core::rules::REGENERATE,
    );
}

// ------------------------------------------------------------- agreement

use serde_json::{json, Value};
use zpersist_core::Plan;

/// What zpersist-core says of a row, checked too: the table documents the
/// rules as well as the agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accept,
    Refuse,
}
use Verdict::{Accept, Refuse};

/// One configuration: a pool and datasets by name relative to it, each
/// with the plan's fields (`mountpoint`, `canmount`, `properties`, `owner`,
/// `group`, `mode`).
struct Row {
    what: String,
    expect: Verdict,
    pool: String,
    datasets: Value,
}

fn row(what: impl Into<String>, expect: Verdict, pool: &str, datasets: Value) -> Row {
    Row {
        what: what.into(),
        expect,
        pool: pool.into(),
        datasets,
    }
}

/// A value as the table shows it: a long one by its length.
fn shown_value(value: &str) -> String {
    if value.len() > 40 {
        format!("\"{}...\" ({} bytes)", &value[..8], value.len())
    } else {
        format!("{value:?}")
    }
}

/// `tank/media` with one property.
fn property(name: &str, value: &str, expect: Verdict) -> Row {
    row(
        format!("{name} = {}", shown_value(value)),
        expect,
        "tank",
        json!({ "media": { "properties": { name: value } } }),
    )
}

/// `tank/<key>`, nothing else declared.
fn dataset(key: &str, expect: Verdict) -> Row {
    row(
        format!("dataset {}", shown_value(key)),
        expect,
        "tank",
        json!({ key: {} }),
    )
}

fn pool(name: &str, expect: Verdict) -> Row {
    row(
        format!("pool {name:?}"),
        expect,
        name,
        json!({ "media": {} }),
    )
}

/// `tank/media` with `field` set.
fn field(name: &str, value: &str, expect: Verdict) -> Row {
    row(
        format!("{name} = {}", shown_value(value)),
        expect,
        "tank",
        json!({ "media": { name: value } }),
    )
}

/// The plan `ensure-datasets` would get for a row.
fn plan_of(row: &Row) -> Value {
    let datasets: Vec<Value> = row
        .datasets
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, fields)| {
            let mut entry = fields.clone();
            entry["name"] = json!(format!("{}/{key}", row.pool));
            entry
        })
        .collect();
    json!({ "version": 1, "pool": row.pool, "datasets": datasets })
}

fn rust_verdict(row: &Row) -> (Verdict, String) {
    match Plan::parse(&plan_of(row).to_string()) {
        Ok(_) => (Accept, String::new()),
        Err(invalid) => (
            Refuse,
            invalid
                .problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" | "),
        ),
    }
}

/// A JSON text as a Nix string literal.
fn nix_string(text: &str) -> String {
    format!(
        "\"{}\"",
        text.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace("${", "\\${")
    )
}

/// Every row evaluated by the modules (Nix 2.8, the stubs of
/// tests/nix): accepted when the evaluation succeeds with no failed
/// assertion, refused when an assertion fails or an option's type refuses
/// a value. Each row is evaluated with every property in `properties`, and
/// once more with `recordsize`, `compression` and `quota` through their
/// typed options when it sets one. Create-only properties are acknowledged
/// and undeclared owners allowed: those are the module's own NixOS checks,
/// not ZFS's rules.
fn nix_verdicts(rows: &[Row]) -> Vec<Vec<(Verdict, String)>> {
    let data: Vec<Value> = rows
        .iter()
        .map(|r| json!({ "pool": r.pool, "datasets": r.datasets }))
        .collect();
    let expr = format!(
        r#"let
  lib = import ./tests/nix/lib.nix;
  typed = [ "recordsize" "compression" "quota" ];
  rows = builtins.fromJSON {data};
  module = asTyped: row: {{
    zpersist.pool = row.pool;
    zpersist.allowUndeclaredOwners = true;
    zpersist.datasets = lib.mapAttrs (_: d:
      let
        props = d.properties or {{ }};
        moved = if asTyped then lib.filterAttrs (n: _: lib.elem n typed) props else {{ }};
      in
      removeAttrs d [ "properties" ] // moved // {{
        properties = removeAttrs props (builtins.attrNames moved);
        acknowledgeCreateOnly = builtins.attrNames props;
      }}) row.datasets;
  }};
  verdict = m:
    let
      r = import ./tests/nix/eval.nix {{ inherit lib; extraModule = m; }};
      t = builtins.tryEval (builtins.deepSeq [ r.plan r.failedAssertions ] r.failedAssertions);
    in
    if !t.success then {{ accepted = false; why = "an option's type refuses it"; }}
    else {{ accepted = t.value == [ ]; why = lib.concatStringsSep " | " t.value; }};
  hasTyped = row: lib.any (d: lib.any (n: lib.elem n typed) (builtins.attrNames (d.properties or {{ }}))) (builtins.attrValues row.datasets);
in
map (row: [ (verdict (module false row)) ] ++ lib.optional (hasTyped row) (verdict (module true row))) rows"#,
        data = nix_string(&Value::Array(data).to_string())
    );
    let out = nix::eval_expr(&expr);
    out.as_array()
        .expect("a list")
        .iter()
        .map(|ways| {
            ways.as_array()
                .unwrap()
                .iter()
                .map(|v| {
                    let verdict = if v["accepted"].as_bool().unwrap() {
                        Accept
                    } else {
                        Refuse
                    };
                    (verdict, v["why"].as_str().unwrap().to_string())
                })
                .collect()
        })
        .collect()
}

/// Checks every row both ways, prints the table, and fails listing each
/// row where zpersist-core is not as expected or Nix disagrees with it.
fn assert_agreement(rows: Vec<Row>) {
    let nix = nix_verdicts(&rows);
    let mut failures = Vec::new();
    println!("| configuration | Plan::parse | Nix (properties) | Nix (typed option) |");
    println!("| --- | --- | --- | --- |");
    for (row, nix) in rows.iter().zip(&nix) {
        let (rust, why) = rust_verdict(row);
        let shown = |v: Verdict| if v == Accept { "accepts" } else { "refuses" };
        println!(
            "| {} | {} | {} | {} |",
            row.what,
            shown(rust),
            shown(nix[0].0),
            nix.get(1).map_or("-", |n| shown(n.0)),
        );
        if rust != row.expect {
            failures.push(format!(
                "{}: Plan::parse {}s it, the table expects {:?} ({why})",
                row.what,
                shown(rust).trim_end_matches('s'),
                row.expect
            ));
        }
        for (way, (verdict, nix_why)) in ["in properties", "as a typed option"].iter().zip(nix) {
            if *verdict != rust {
                failures.push(format!(
                    "{} ({way}): Plan::parse {} it ({why}), the Nix evaluation {} it ({nix_why})",
                    row.what,
                    shown(rust),
                    shown(*verdict)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn property_values_are_accepted_and_refused_alike() {
    assert_agreement(vec![
        property("recordsize", "24K", Refuse),
        property("recordsize", "16K", Accept),
        property("recordsize", "16M", Accept),
        property("recordsize", "32M", Refuse),
        property("recordsize", "0.5M", Accept),
        property("recordsize", "1.5K", Refuse),
        property("recordsize", "256", Refuse),
        property("compression", "lz4", Accept),
        property("compression", "zstd-19", Accept),
        property("compression", "zstd-20", Refuse),
        property("compression", "brotli", Refuse),
        property("compression", "zstd-01", Refuse),
        property("compression", "zstd-fast-1000", Accept),
        property("compression", "LZ4", Refuse),
        property("atime", "off", Accept),
        property("atime", "OFF", Refuse),
        property("quota", "16 G", Refuse),
        property("quota", "16E", Refuse),
        property("quota", "20G", Accept),
        property("quota", "none", Accept),
        property("quota", "20gb", Accept),
        property("quota", "15.99E", Accept),
        property("quota", "18446744073709551615", Accept),
        property("quota", "18446744073709551616", Refuse),
        property("quota", "17179869184G", Refuse),
        property("quota", "1.5", Refuse),
        property("quota", "+5G", Refuse),
        property("quota", ".5G", Refuse),
        property("quota", "12B", Accept),
        property("snapshot_limit", "10", Accept),
        property("snapshot_limit", "none", Accept),
        property("snapshot_limit", "+5", Refuse),
        property("special_small_blocks", "0", Accept),
        property("special_small_blocks", "64K", Accept),
        property("normalization", "formD", Accept),
        property("normalization", "formd", Refuse),
        property("xattr", "sa", Accept),
        property("sharenfs", "", Refuse),
        property("backup", "daily", Refuse),
        property("com.example:backup", "daily", Accept),
        property("Com.Example:backup", "daily", Refuse),
        property(":backup", "daily", Refuse),
        property("used", "1G", Refuse),
        property("com.example:note", "a\tb", Refuse),
        property("com.example:note", &"x".repeat(8192), Accept),
        property("com.example:note", &"x".repeat(8193), Refuse),
    ]);
}

#[test]
fn names_are_accepted_and_refused_alike() {
    // 255 bytes in all, and 256: "tank/" and the rest.
    let long = |n: usize| "a".repeat(n - "tank/".len());
    assert_agreement(vec![
        pool("tank", Accept),
        pool("tank.x:y z_-1", Accept),
        pool("mirror1", Refuse),
        pool("raidz2", Refuse),
        pool("draid", Refuse),
        pool("spare-pool", Refuse),
        pool("log", Refuse),
        pool("logs", Refuse),
        pool("cache", Accept),
        pool("special", Accept),
        pool("c0d0", Accept),
        pool("1tank", Refuse),
        pool("-tank", Refuse),
        pool("..", Refuse),
        pool("tank/nixos", Refuse),
        dataset("-sonarr", Accept),
        dataset("1media", Accept),
        dataset(".hidden", Accept),
        dataset("media/a b:c", Accept),
        dataset("media/..", Refuse),
        dataset("media/.", Refuse),
        dataset("media/ä", Refuse),
        dataset("media@today", Refuse),
        dataset("media#mark", Refuse),
        dataset("media//tv", Refuse),
        dataset("media/", Refuse),
        dataset(&long(255), Accept),
        dataset(&long(256), Refuse),
    ]);
}

#[test]
fn mountpoints_and_the_other_fields_are_accepted_and_refused_alike() {
    assert_agreement(vec![
        field("mountpoint", "/srv/media", Accept),
        field("mountpoint", "/", Accept),
        field("mountpoint", "none", Accept),
        field("mountpoint", "legacy", Accept),
        field("mountpoint", "/srv//media/", Accept),
        field("mountpoint", "/srv/../media", Refuse),
        field("mountpoint", "/srv/./media", Refuse),
        field("mountpoint", "/srv/media\n", Refuse),
        field("mountpoint", "/srv/me\tdia", Refuse),
        field("mountpoint", "/srv/\u{85}media", Refuse),
        field("mountpoint", "srv/media", Refuse),
        field("mountpoint", "None", Refuse),
        field("mountpoint", &format!("/{}", "a".repeat(4094)), Accept),
        field("mountpoint", &format!("/{}", "a".repeat(4095)), Refuse),
        field("canmount", "noauto", Accept),
        field("canmount", "maybe", Refuse),
        field("mode", "0750", Accept),
        field("mode", "750", Accept),
        field("mode", "0758", Refuse),
        field("mode", "75", Refuse),
        field("mode", "07777", Refuse),
        field("owner", "root", Accept),
        field("owner", "media", Accept),
        field("owner", "1000", Refuse),
        field("owner", "+5", Refuse),
        field("group", "a:b", Refuse),
        field("group", "a b", Refuse),
        row(
            "owner on a dataset with mountpoint none",
            Refuse,
            "tank",
            json!({ "media": { "mountpoint": "none", "owner": "root" } }),
        ),
    ]);
}

/// `tank/base` on /var/lib with `canmount` (if any), and its child
/// `tank/base/x` mounting there too.
fn parent_on_childs_path(canmount: Option<&str>, expect: Verdict) -> Row {
    let mut parent = json!({ "mountpoint": "/var/lib" });
    if let Some(canmount) = canmount {
        parent["canmount"] = json!(canmount);
    }
    row(
        format!(
            "a {}parent on its child's path",
            canmount.map_or(String::new(), |c| format!("canmount={c} "))
        ),
        expect,
        "tank",
        json!({ "base": parent, "base/x": { "mountpoint": "/var/lib" } }),
    )
}

#[test]
fn shared_mountpoints_are_accepted_and_refused_alike() {
    assert_agreement(vec![
        parent_on_childs_path(Some("off"), Accept),
        parent_on_childs_path(Some("noauto"), Refuse),
        parent_on_childs_path(None, Refuse),
        row(
            "an inherited path taken by another dataset",
            Refuse,
            "tank",
            json!({
                "srv": { "mountpoint": "/srv" },
                "srv/media": {},
                "media": { "mountpoint": "/srv/media" },
            }),
        ),
        row(
            "a path inherited through a canmount=off parent, taken by another",
            Refuse,
            "tank",
            json!({
                "srv": { "mountpoint": "/srv", "canmount": "off" },
                "srv/media": {},
                "media": { "mountpoint": "/srv/media" },
            }),
        ),
        row(
            "one path spelled two ways",
            Refuse,
            "tank",
            json!({
                "a": { "mountpoint": "/srv/a" },
                "b": { "mountpoint": "/srv//a/" },
            }),
        ),
        row(
            "two datasets on none",
            Accept,
            "tank",
            json!({
                "a": { "mountpoint": "none" },
                "b": { "mountpoint": "none" },
            }),
        ),
    ]);
}

// ------------------------------------------------- the rules, one by one

/// The characters the sweeps try: every ASCII one but NUL (which no Nix
/// string holds), and a few beyond.
fn sweep_characters() -> Vec<char> {
    (1..=0x7f_u32)
        .filter_map(char::from_u32)
        .chain(['é', 'ä', '\u{85}', '\u{9f}', '\u{a0}', '\u{2028}', '😀'])
        .collect()
}

/// Evaluates `body` (a Nix expression using `rules`, nix/lib/rules.nix,
/// and `input`, the JSON value given) and returns its value.
fn with_rules(body: &str, input: &Value) -> Value {
    nix::eval_expr(&format!(
        r#"let
  lib = import ./tests/nix/lib.nix;
  rules = (import ./nix/lib {{ inherit lib; }}).rules;
  input = builtins.fromJSON {};
in {body}"#,
        nix_string(&input.to_string())
    ))
}

/// The rules (keys of `rust` and `nix`, each `true` when it accepts) on
/// which zpersist-core and Nix disagree about `what`.
fn disagreements_on(what: &str, rust: &Value, nix: &Value) -> Vec<String> {
    rust.as_object()
        .unwrap()
        .iter()
        .filter(|(rule, accepted)| nix[rule.as_str()] != **accepted)
        .map(|(rule, accepted)| {
            format!(
                "{rule} of {what}: zpersist-core accepts: {accepted}, Nix accepts: {}",
                nix[rule.as_str()]
            )
        })
        .collect()
}

/// For every character of the sweep, in a name, a pool, a user property
/// name, a user property value, a mountpoint and an owner: Nix's rules
/// refuse exactly what zpersist-core's do.
#[test]
fn every_character_is_accepted_and_refused_alike() {
    use zpersist_core::name::name_problem;
    use zpersist_core::plan::{is_owner_name, mountpoint_problem};
    use zpersist_core::property::{property_name_problem, value_problem};

    let chars = sweep_characters();
    let strings: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
    let nix = with_rules(
        r#"map (c: {
  name = rules.relativeNameProblem "a${c}b" == null && rules.fullNameProblem "tank/a${c}b" == null;
  pool = rules.poolNameProblem "${c}pool" == null && rules.poolNameProblem "p${c}ool" == null;
  userProperty = rules.propertyNameProblem "com.example:a${c}b" == null;
  value = rules.valueProblem "com.example:note" "a${c}b" == null;
  mountpoint = rules.mountpointProblem "/srv/a${c}b" == null;
  owner = rules.ownerProblem "a${c}b" == null && rules.ownerProblem "${c}" == null;
}) input"#,
        &json!(strings),
    );
    let mut disagreements = Vec::new();
    for (c, nix) in chars.iter().zip(nix.as_array().unwrap()) {
        let pool_ok = |pool: String| name_problem(&pool).is_none() && !pool.contains('/');
        let rust = json!({
            "name": name_problem(&format!("tank/a{c}b")).is_none(),
            "pool": pool_ok(format!("{c}pool")) && pool_ok(format!("p{c}ool")),
            "userProperty": property_name_problem(&format!("com.example:a{c}b")).is_none(),
            "value": value_problem("com.example:note", &format!("a{c}b")).is_none(),
            "mountpoint": mountpoint_problem(&format!("/srv/a{c}b")).is_none(),
            "owner": is_owner_name(&format!("a{c}b")) && is_owner_name(&c.to_string()),
        });
        disagreements.extend(disagreements_on(&format!("{c:?}"), &rust, nix));
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// Sizes spelled every way: parse_size and nix/lib/rules.nix agree on which
/// are sizes, and on which are block sizes (`recordsize`,
/// `special_small_blocks`), fractions and the 64-bit bound included.
#[test]
fn every_spelling_of_a_size_is_accepted_and_refused_alike() {
    use zpersist_core::property::{parse_size, value_problem};

    let numbers = [
        "0",
        "1",
        "01",
        "1.",
        "1.5",
        ".5",
        "1..5",
        "0.5",
        "0.0001",
        "15",
        "16",
        "15.99",
        "15.999999999999999999",
        "512",
        "24",
        "16384",
        "17179869183",
        "17179869183.99999999",
        "17179869184",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999",
        "",
        "-1",
        "+1",
        "1e3",
    ];
    let suffixes = [
        "", "b", "B", "k", "K", "kb", "KB", "Kb", "KBB", "M", "m", "G", "T", "P", "E", "e", "eb",
        "X", " K", "K ", "KiB",
    ];
    let sizes: Vec<String> = numbers
        .iter()
        .flat_map(|n| suffixes.iter().map(move |s| format!("{n}{s}")))
        .collect();
    let nix = with_rules(
        r#"map (s: {
  size = rules.parseSize s != null;
  recordsize = rules.valueProblem "recordsize" s == null;
  special_small_blocks = rules.valueProblem "special_small_blocks" s == null;
  quota = rules.valueProblem "quota" s == null;
}) input"#,
        &json!(sizes),
    );
    let mut disagreements = Vec::new();
    for (size, nix) in sizes.iter().zip(nix.as_array().unwrap()) {
        let rust = json!({
            "size": parse_size(size).is_some(),
            "recordsize": value_problem("recordsize", size).is_none(),
            "special_small_blocks": value_problem("special_small_blocks", size).is_none(),
            "quota": value_problem("quota", size).is_none(),
        });
        disagreements.extend(disagreements_on(&format!("{size:?}"), &rust, nix));
    }
    println!("{} spellings of sizes compared", sizes.len());
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// Every settable native property with its own words, read-only and
/// create-only property: the data Nix applies is zpersist-core's, word for
/// word (a property's words, in and out of case).
#[test]
fn every_word_of_every_property_is_accepted_and_refused_alike() {
    use zpersist_core::property::{compression_values, value_problem, Shape, NATIVE};

    let mut pairs: Vec<(String, String)> = Vec::new();
    for (property, shape) in NATIVE {
        let words: Vec<String> = match shape {
            Shape::OneOf(words) => words.iter().map(|w| w.to_string()).collect(),
            Shape::Compression => compression_values().to_vec(),
            _ => vec!["1".into(), "none".into(), "x".into()],
        };
        for word in words {
            pairs.push((property.to_string(), word.to_uppercase()));
            pairs.push((property.to_string(), format!("{word} ")));
            pairs.push((property.to_string(), word));
        }
    }
    let nix = with_rules(
        r#"map (p: rules.propertyNameProblem (builtins.elemAt p 0) == null && rules.valueProblem (builtins.elemAt p 0) (builtins.elemAt p 1) == null) input"#,
        &json!(pairs),
    );
    let mut disagreements = Vec::new();
    for ((property, value), nix) in pairs.iter().zip(nix.as_array().unwrap()) {
        let rust = value_problem(property, value).is_none();
        if nix != &json!(rust) {
            disagreements.push(format!(
                "{property} = {value:?}: zpersist-core accepts: {rust}, Nix accepts: {nix}"
            ));
        }
    }
    println!("{} property values compared", pairs.len());
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}
