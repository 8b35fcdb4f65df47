//! zpersist's pure core: dataset specs, the contracts the NixOS modules
//! write (one versioned loader, one diagnostic type: [`contract`]), the
//! rules on names, properties, modes and owners, observed state, the
//! planner, migration decisions and the replication lag computation. No
//! I/O and no processes: adapters feed it facts, binaries carry out what
//! it decides.

pub mod backup;
pub mod contract;
pub mod drill;
pub mod encryption;
pub mod error;
pub mod facts;
pub mod json;
pub mod migration;
pub mod mounted;
pub mod name;
pub mod observed;
pub mod ownership;
pub mod pitr;
pub mod plan;
pub mod planner;
pub mod preseed;
pub mod property;
pub mod pull_base;
pub mod pull_gate;
pub mod pull_status;
pub mod replication;
pub mod rules;
pub mod status;
pub mod steps;
pub mod text;
pub mod time;

pub use contract::{Contract, Diagnostic};
pub use observed::{DirState, HostFacts, ObservedPool, Source};
pub use plan::{DatasetSpec, InvalidPlan, Plan, PlanProblem};
pub use planner::{plan_actions, Action, Drift, Outcome, Problem};
pub use text::{human_bytes, shown};
