//! zpersist's pure core: dataset specs, plan files, validation, observed
//! state, the planner, migration decisions and the replication lag
//! computation. No I/O and no processes: adapters feed it facts, binaries
//! carry out what it decides.

pub mod facts;
pub mod json;
pub mod migration;
pub mod mounted;
pub mod name;
pub mod observed;
pub mod pitr;
pub mod plan;
pub mod planner;
pub mod preseed;
pub mod property;
pub mod replication;
pub mod rules;
pub mod status;
pub mod steps;
pub mod text;
pub mod time;

pub use observed::{DirState, HostFacts, ObservedPool, Source};
pub use plan::{DatasetSpec, InvalidPlan, Plan, PlanProblem};
pub use planner::{plan_actions, Action, Drift, Outcome, Problem};
pub use text::{human_bytes, shown};
