//! The example files scripts/demo feeds to the binaries stay what this
//! zpersist reads (the one contract loader, strict).

use zpersist_core::preseed::{PreseedPlan, SourceSpec};

#[test]
fn the_demos_preseed_plan_restores_sonarr_from_the_usb_pool_first() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/demo/preseed/sonarr.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let plan = PreseedPlan::parse(&text).unwrap_or_else(|problems| panic!("{path}: {problems:?}"));
    assert_eq!(plan.dataset, "tank/services/sonarr");
    assert!(
        matches!(&plan.sources[0], SourceSpec::Replica(r) if r.host.is_none() && r.dataset == "usb/backup/demo/services/sonarr"),
        "{:?}",
        plan.sources
    );
    // The same dataset, mountpoint and owner as the demo's datasets plan.
    let datasets: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/plans/datasets.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let sonarr = datasets["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "tank/services/sonarr")
        .unwrap();
    assert_eq!(sonarr["owner"], plan.owner.as_deref().unwrap());
    assert_eq!(sonarr["mode"], plan.mode.as_deref().unwrap());
    for (property, value) in &plan.properties {
        assert_eq!(sonarr["properties"][property], value.as_str(), "{property}");
    }
}

#[test]
fn the_demos_drill_plan_drills_the_same_sources_preseed_restores_from() {
    let read = |name: &str| {
        std::fs::read_to_string(format!(
            "{}/../../examples/demo/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let drill = zpersist_core::contract::parse::<zpersist_core::drill::DrillPlan>(&read(
        "drill/sonarr.json",
    ))
    .unwrap_or_else(|problems| panic!("drill/sonarr.json: {problems:?}"));
    let preseed = PreseedPlan::parse(&read("preseed/sonarr.json")).unwrap();
    assert_eq!(drill.preseed, preseed);
    assert_eq!(drill.sqlite, ["sonarr.db"]);
}
