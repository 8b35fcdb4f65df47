# Notifications: `zpersist.notify` (being written).
{ ... }:
{
}
