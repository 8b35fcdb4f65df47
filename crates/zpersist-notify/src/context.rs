//! `/etc/zpersist/notify-context.json`, as nix/modules/notify.nix renders
//! it: the contract is zpersist-core's (`contract::notify`).

pub use zpersist_core::contract::notify::{
    CommandDelivery, Delivery, Email, NotifyContext as Context, Ntfy, UnitInfo, Webhook,
    DEFAULT_TIMEOUT_SECONDS,
};
